// What must never reach a message, an event, a log or a file others can read: the credentials a URL
// carries (`user:password@`, signed or token query parameters). Every URL shown to the user goes
// through redactUrl; the CLI passes every message through redactText as well, whatever layer made it.

const MASK = '***';

/** Query parameters whose value is a credential (presigned S3 URLs, tokens, passwords). */
const SECRET_PARAM =
  /^(?:x-amz-(?:signature|credential|security-token)|[\w-]*(?:token|secret|password|passwd|signature|api[-_]?key|access[-_]?key)[\w-]*|sig|key)$/i;

/** `scheme://userinfo@`, as written, or percent-encoded inside another URL's query (`endpoint=…`). */
const USERINFO = /\b([a-z][a-z0-9+.-]*):\/\/([^/?#@\s"'<>]*)@/gi;
const ENCODED_USERINFO = /(%2F%2F)(?:(?!%2F|%40)[^/?#&\s"'<>])*%40/gi;
const PARAM = /([?&])([^=&#\s]+)=([^&#\s"'<>]*)/g;

/** The URL with its userinfo and credential parameters replaced by ***; never throws. */
export function redactUrl(url: string): string {
  return url
    .replace(USERINFO, (_, scheme: string, info: string) => `${scheme}://${maskUserinfo(scheme, info)}@`)
    .replace(ENCODED_USERINFO, `$1${MASK}%40`)
    .replace(PARAM, (whole, sep: string, name: string) => (SECRET_PARAM.test(decodeSafe(name)) ? `${sep}${name}=${MASK}` : whole));
}

/**
 * An http(s) login may itself be a token (`https://TOKEN@host`): all of it goes. Elsewhere the user
 * name is only a name (`ssh://builder@host`, which messages must still show): only a password goes.
 */
function maskUserinfo(scheme: string, info: string): string {
  if (/^https?$/i.test(scheme)) return MASK;
  const colon = info.indexOf(':');
  return colon === -1 ? info : `${info.slice(0, colon)}:${MASK}`;
}

const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi;

/** Any text with every URL in it redacted. */
export function redactText(text: string): string {
  return text.replace(URL_IN_TEXT, redactUrl);
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** An http(s) URL's login and password, for a netrc. */
export interface UrlCredentials {
  machine: string;
  login: string;
  password: string;
}

/**
 * An http(s) URL split into the URL without its userinfo (what may be written where others read it,
 * and what Nix is given) and the credentials it carried (what goes to a netrc only the user reads).
 */
export function splitCredentials(url: string): { url: string; credentials?: UrlCredentials } {
  if (!/^https?:\/\//i.test(url)) return { url };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url };
  }
  if (!u.username && !u.password) return { url };
  const credentials = { machine: u.hostname, login: decodeSafe(u.username), password: decodeSafe(u.password) };
  u.username = '';
  u.password = '';
  // URL adds a slash to a bare origin; keep the user's form otherwise
  const clean = url.endsWith('/') || u.pathname !== '/' ? u.toString() : u.toString().replace(/\/$/, '');
  return { url: clean, credentials };
}
