/**
 * Estimated cost of one upstream answer, from the megapixels it reports (SPEC §3
 * PRICE_FIRST_MP_USD / PRICE_EXTRA_MP_USD, BFL's FLUX.2 [pro] list): the first output
 * megapixel of each image, then each further output megapixel and each input megapixel.
 * Kept in integer micro-dollars so Redis can add them up exactly.
 */
export interface Prices {
  firstMpUsd: number;
  extraMpUsd: number;
}

export function estimateCostMicroUsd(outputMp: number, inputMp: number, images: number, prices: Prices): number {
  if (outputMp <= 0 && inputMp <= 0) return 0;
  const firsts = Math.min(Math.max(images, outputMp > 0 ? 1 : 0), Math.ceil(outputMp));
  const usd = firsts * prices.firstMpUsd + (Math.max(outputMp - firsts, 0) + inputMp) * prices.extraMpUsd;
  return Math.round(usd * 1e6);
}
