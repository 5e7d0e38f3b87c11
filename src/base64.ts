/** Standard base64 of `bytes`, in chunks (String.fromCharCode takes a bounded number of arguments). */
export const base64 = (bytes: Uint8Array): string => {
  let binary = "";
  for (let index = 0; index < bytes.length; index += 0x8000) binary += String.fromCharCode(...bytes.subarray(index, index + 0x8000));
  return btoa(binary);
};

/** The bytes of standard base64 `text` (line breaks allowed), or undefined when it is not base64. */
export const fromBase64 = (text: string): Uint8Array | undefined => {
  const compact = text.replace(/[\r\n]/g, "");
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact)) return undefined;
  return Uint8Array.from(atob(compact), (char) => char.charCodeAt(0));
};
