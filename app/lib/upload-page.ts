/** GET /file/upload: a plain form that works without JavaScript, as in the course. */
export function uploadPage(prefix: string, csrf?: { name: string; value: string }): string {
  const action = `${prefix}/upload` + (csrf ? `?${encodeURIComponent(csrf.name)}=${encodeURIComponent(csrf.value)}` : '');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sonofs upload</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; }
  form { display: flex; gap: .75rem; align-items: center; flex-wrap: wrap; }
  button { padding: .4rem 1.2rem; }
</style>
</head>
<body>
<h1>Upload a file</h1>
<form id="upload" action="${action}" method="post" enctype="multipart/form-data">
  <input type="file" name="file" required>
  <button type="submit">Upload</button>
</form>
<p><a href="${prefix}/query?limit=20">Your latest files (JSON)</a></p>
</body>
</html>
`;
}
