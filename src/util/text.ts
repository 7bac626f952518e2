/**
 * Text from outside (a request, a registry, a plugin) shortened for a message or a log line:
 * a client may send megabytes, and an error must not carry them back.
 */
export function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}

/** The same on one line: control characters (newlines among them) become spaces. */
export function oneLine(text: string, max: number): string {
  return shorten(text.replace(/[\u0000-\u001f\u007f]+/g, ' '), max);
}
