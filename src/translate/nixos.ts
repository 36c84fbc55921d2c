// The default upstream: cache.nixos.org and its key. A leaf, so that --help and the option defaults
// of translate and build name it without loading the translator.
export const NIXOS_CACHE = 'https://cache.nixos.org';
export const NIXOS_KEY = 'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=';
