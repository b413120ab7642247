// The console's one way to the server: same-origin requests with the session cookie, the CSRF
// token on every non-GET request, and errors as ApiError with the server's stable code.

let csrfToken = '';
let tenantName = '';
let onSignedOut = () => {};

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export function setSession({ tenant, csrf }) {
  if (tenant !== undefined) tenantName = tenant;
  if (csrf !== undefined) csrfToken = csrf || '';
}

/** Called when a request answers 401 although a member was signed in (expired session). */
export function onSessionLost(callback) {
  onSignedOut = callback;
}

export function tenant() {
  return tenantName;
}

/** `/v1/tenants/{tenant}` + path. */
export function tp(path) {
  return `/v1/tenants/${encodeURIComponent(tenantName)}${path}`;
}

/** A query string of the non-empty values. */
export function qs(params) {
  const parts = Object.entries(params)
    .filter(([, value]) => value !== undefined && value !== null && value !== '')
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

function errorFrom(status, text) {
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  if (body && typeof body.code === 'string') {
    return new ApiError(status, body.code, body.message || '', body);
  }
  return new ApiError(status, `http_${status}`, text.slice(0, 200));
}

/**
 * One request. `json` is sent as JSON; `body` as is (with `type` as its content type).
 * Answers the parsed JSON, the text for other content types, or null for 204.
 */
export async function api(method, path, { json, body, type, quiet } = {}) {
  const headers = {};
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (type) {
    headers['Content-Type'] = type;
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: 'same-origin' });
  } catch (error) {
    throw new ApiError(0, 'network', String(error && error.message ? error.message : error));
  }
  const text = response.status === 204 ? '' : await response.text();
  if (!response.ok) {
    const error = errorFrom(response.status, text);
    if (response.status === 401 && !quiet) onSignedOut(error);
    throw error;
  }
  if (response.status === 204) return null;
  const contentType = response.headers.get('content-type') || '';
  return contentType.includes('json') ? JSON.parse(text) : text;
}

export const get = (path, options) => api('GET', path, options);
export const post = (path, json, options) => api('POST', path, { ...options, json });
export const put = (path, json, options) => api('PUT', path, { ...options, json });
export const patch = (path, json, options) => api('PATCH', path, { ...options, json });
export const del = (path, options) => api('DELETE', path, options);

/**
 * Sends a file with XMLHttpRequest so the upload reports its progress:
 * `onProgress(sentBytes, totalBytes)` while uploading, then `onSent()` when the server has the
 * whole body and is working on it. Answers like `api`.
 */
export function upload(method, path, file, { type, onProgress, onSent } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    xhr.withCredentials = false;
    if (type) xhr.setRequestHeader('Content-Type', type);
    if (csrfToken) xhr.setRequestHeader('X-CSRF-Token', csrfToken);
    xhr.upload.onprogress = (event) => {
      if (onProgress) onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    };
    xhr.upload.onload = () => {
      if (onProgress) onProgress(file.size, file.size);
      if (onSent) onSent();
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', 'the upload was interrupted'));
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'the upload was cancelled'));
    xhr.onload = () => {
      if (xhr.status < 200 || xhr.status >= 300) {
        const error = errorFrom(xhr.status, xhr.responseText || '');
        if (xhr.status === 401) onSignedOut(error);
        reject(error);
        return;
      }
      if (xhr.status === 204 || !xhr.responseText) {
        resolve(null);
        return;
      }
      const contentType = xhr.getResponseHeader('content-type') || '';
      try {
        resolve(contentType.includes('json') ? JSON.parse(xhr.responseText) : xhr.responseText);
      } catch (error) {
        reject(new ApiError(xhr.status, 'bad_response', String(error)));
      }
    };
    xhr.send(file);
  });
}
