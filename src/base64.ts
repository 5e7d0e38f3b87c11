/** Standard base64 of `bytes`, in chunks (String.fromCharCode takes a bounded number of arguments). */
export const base64 = (bytes: Uint8Array): string => {
  let binary = "";
  for (let index = 0; index < bytes.length; index += 0x8000) binary += String.fromCharCode(...bytes.subarray(index, index + 0x8000));
  return btoa(binary);
};
