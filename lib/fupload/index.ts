export * from './task';
export * from './notifier';
