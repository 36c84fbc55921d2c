// Written by Debian's Nix 2.8.0 from one expression, evaluated at /nix/store and at /tmp/store (each
// in a private mount namespace): nix-instantiate e.nix, then the .drv files and `nix path-info --json`.
// The expression: a flat sha256 and a recursive sha1 fixed output, a three-output derivation with
// every ATerm escape in its args and a builtins.toFile text naming a source, and a top derivation
// built by that source, using two outputs of the multi-output one.
export const NIX_STORE_DRVS: Record<string, string> = {
  '/nix/store/9d0sjfi5618imi19g9iwihgk4224lz0p-rec1.drv':
    'Derive([("out","/nix/store/2v77y172d5p2rb8qqxy13ya4p12dfqlf-rec1","r:sha1","0000000000000000000000000000000000000000")],[],[],"x86_64-linux","/bin/sh",["-c","mkdir $out"],[("builder","/bin/sh"),("name","rec1"),("out","/nix/store/2v77y172d5p2rb8qqxy13ya4p12dfqlf-rec1"),("outputHash","0000000000000000000000000000000000000000"),("outputHashAlgo","sha1"),("outputHashMode","recursive"),("system","x86_64-linux")])',
  '/nix/store/jj3sdm8mkyri0s1gafl553l32rq7g864-flat.drv':
    'Derive([("out","/nix/store/jafr3l9gcgc9kss6avik01b7k153scmh-flat","sha256","e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")],[],[],"x86_64-linux","/bin/sh",["-c","echo x > $out"],[("builder","/bin/sh"),("name","flat"),("out","/nix/store/jafr3l9gcgc9kss6avik01b7k153scmh-flat"),("outputHash","sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),("outputHashAlgo","sha256"),("outputHashMode","flat"),("system","x86_64-linux")])',
  '/nix/store/jqjgkdvfds8sr3cpqkvqr72v28klkzis-multi.drv':
    'Derive([("dev","/nix/store/b5sxb8r3kcmhfijslzhvxnnmk7739lxl-multi-dev","",""),("lib","/nix/store/s2xx9dfa7cn2i5wa47mw6qqzp27f37nz-multi-lib","",""),("out","/nix/store/sy8knrf9c9bap4lg1hwf8s7g056w04g6-multi","","")],[("/nix/store/jj3sdm8mkyri0s1gafl553l32rq7g864-flat.drv",["out"])],["/nix/store/kj0hxvglz5jraww78pimlb0a1y1qk2cl-note.txt"],"x86_64-linux","/bin/sh",["-c","q\\"b\\\\s\\nn\\rr\\tt"],[("builder","/bin/sh"),("dev","/nix/store/b5sxb8r3kcmhfijslzhvxnnmk7739lxl-multi-dev"),("f","/nix/store/jafr3l9gcgc9kss6avik01b7k153scmh-flat"),("lib","/nix/store/s2xx9dfa7cn2i5wa47mw6qqzp27f37nz-multi-lib"),("name","multi"),("note","/nix/store/kj0hxvglz5jraww78pimlb0a1y1qk2cl-note.txt"),("out","/nix/store/sy8knrf9c9bap4lg1hwf8s7g056w04g6-multi"),("outputs","out dev lib"),("system","x86_64-linux")])',
  '/nix/store/zr4vhpsgr5p0x2lfg91cx9ndmqfrnp6i-top.drv':
    'Derive([("out","/nix/store/dlgj3dgfn7k5dbsqf033c4mq90xgjy9c-top","","")],[("/nix/store/9d0sjfi5618imi19g9iwihgk4224lz0p-rec1.drv",["out"]),("/nix/store/jqjgkdvfds8sr3cpqkvqr72v28klkzis-multi.drv",["dev","out"])],["/nix/store/z45ailnkm27lnvhimqkhy08f6sh5m17d-hello.txt"],"x86_64-linux","/nix/store/z45ailnkm27lnvhimqkhy08f6sh5m17d-hello.txt",[],[("builder","/nix/store/z45ailnkm27lnvhimqkhy08f6sh5m17d-hello.txt"),("d","/nix/store/b5sxb8r3kcmhfijslzhvxnnmk7739lxl-multi-dev"),("m","/nix/store/sy8knrf9c9bap4lg1hwf8s7g056w04g6-multi"),("name","top"),("out","/nix/store/dlgj3dgfn7k5dbsqf033c4mq90xgjy9c-top"),("r","/nix/store/2v77y172d5p2rb8qqxy13ya4p12dfqlf-rec1"),("system","x86_64-linux")])',
};

export const TMP_STORE_DRVS: Record<string, string> = {
  '/tmp/store/75dbl29sixmsa6wvikmndxjx2bi66rln-rec1.drv':
    'Derive([("out","/tmp/store/9k43hmczjr1jmpxriy7dx6rkib6gswrd-rec1","r:sha1","0000000000000000000000000000000000000000")],[],[],"x86_64-linux","/bin/sh",["-c","mkdir $out"],[("builder","/bin/sh"),("name","rec1"),("out","/tmp/store/9k43hmczjr1jmpxriy7dx6rkib6gswrd-rec1"),("outputHash","0000000000000000000000000000000000000000"),("outputHashAlgo","sha1"),("outputHashMode","recursive"),("system","x86_64-linux")])',
  '/tmp/store/ikmwwy9bbxcsa4jbri9004gvvigg97a1-flat.drv':
    'Derive([("out","/tmp/store/dcy16z9prbbs377spz70ncb88f0806l9-flat","sha256","e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")],[],[],"x86_64-linux","/bin/sh",["-c","echo x > $out"],[("builder","/bin/sh"),("name","flat"),("out","/tmp/store/dcy16z9prbbs377spz70ncb88f0806l9-flat"),("outputHash","sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),("outputHashAlgo","sha256"),("outputHashMode","flat"),("system","x86_64-linux")])',
  '/tmp/store/lrqs458drl7gfvch3153mkm7w9250fh7-multi.drv':
    'Derive([("dev","/tmp/store/7bhpnk2s633mwn0px3s5x2x070mc8954-multi-dev","",""),("lib","/tmp/store/27ja05733k6jbd71d111672bbcvbkv96-multi-lib","",""),("out","/tmp/store/c81d63q94365356bbvdcjnz2rh0cca6q-multi","","")],[("/tmp/store/ikmwwy9bbxcsa4jbri9004gvvigg97a1-flat.drv",["out"])],["/tmp/store/bcss8q0qa7s09xva7g3yzh6z34v5x0gg-note.txt"],"x86_64-linux","/bin/sh",["-c","q\\"b\\\\s\\nn\\rr\\tt"],[("builder","/bin/sh"),("dev","/tmp/store/7bhpnk2s633mwn0px3s5x2x070mc8954-multi-dev"),("f","/tmp/store/dcy16z9prbbs377spz70ncb88f0806l9-flat"),("lib","/tmp/store/27ja05733k6jbd71d111672bbcvbkv96-multi-lib"),("name","multi"),("note","/tmp/store/bcss8q0qa7s09xva7g3yzh6z34v5x0gg-note.txt"),("out","/tmp/store/c81d63q94365356bbvdcjnz2rh0cca6q-multi"),("outputs","out dev lib"),("system","x86_64-linux")])',
  '/tmp/store/s3r57r0vc30m8nnh70r38prw1rddvzp9-top.drv':
    'Derive([("out","/tmp/store/rlm7wyqn7n995n2fpf7bjynhdlwq7r81-top","","")],[("/tmp/store/75dbl29sixmsa6wvikmndxjx2bi66rln-rec1.drv",["out"]),("/tmp/store/lrqs458drl7gfvch3153mkm7w9250fh7-multi.drv",["dev","out"])],["/tmp/store/irisp33alladxfxqmbdq4a9gacl607jx-hello.txt"],"x86_64-linux","/tmp/store/irisp33alladxfxqmbdq4a9gacl607jx-hello.txt",[],[("builder","/tmp/store/irisp33alladxfxqmbdq4a9gacl607jx-hello.txt"),("d","/tmp/store/7bhpnk2s633mwn0px3s5x2x070mc8954-multi-dev"),("m","/tmp/store/c81d63q94365356bbvdcjnz2rh0cca6q-multi"),("name","top"),("out","/tmp/store/rlm7wyqn7n995n2fpf7bjynhdlwq7r81-top"),("r","/tmp/store/9k43hmczjr1jmpxriy7dx6rkib6gswrd-rec1"),("system","x86_64-linux")])',
};

/** The closure's two sources at /nix/store, with the `ca` and references `nix path-info --json` gave. */
export const NIX_STORE_SOURCES = {
  hello: { path: '/nix/store/z45ailnkm27lnvhimqkhy08f6sh5m17d-hello.txt', ca: 'fixed:r:sha256:00zns3gj9hwz2a4b0i07y7nmxybq59lh24bl3xsxblcl6333mjil' },
  note: {
    path: '/nix/store/kj0hxvglz5jraww78pimlb0a1y1qk2cl-note.txt',
    ca: 'text:sha256:1ryacr11d9fqw411d76wy8bkb7qxb96pdk0lykwdnm5v7ki7qlgd',
    text: 'see /nix/store/z45ailnkm27lnvhimqkhy08f6sh5m17d-hello.txt\n',
    references: ['/nix/store/z45ailnkm27lnvhimqkhy08f6sh5m17d-hello.txt'],
  },
};

/**
 * Paths `nix-store --add`, `--add-fixed` and `--add-fixed --recursive` gave at /nix/store for a file
 * hello.txt ("hello world\n") and a tree (data: "data", sub/run: an executable script), with the
 * digests `nix-hash` gave (--flat for flat ones).
 */
export const ADDED_PATHS = [
  {
    method: 'recursive',
    algo: 'sha256',
    name: 'hello.txt',
    hex: '34ca3ac63094d1d5751f741101692a78f95eedf10744b088129fc324dfd0f603',
    path: '/nix/store/z45ailnkm27lnvhimqkhy08f6sh5m17d-hello.txt',
  },
  {
    method: 'recursive',
    algo: 'sha256',
    name: 'tree',
    hex: '8582da23c140dd2afc52952551bbad8f9ad275d63508e85c3e12e3b8480c6821',
    path: '/nix/store/6i2p92f1vbwwkwv92bdqwg4js9j20qq6-tree',
  },
  {
    method: 'flat',
    algo: 'sha256',
    name: 'hello.txt',
    hex: 'a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447',
    path: '/nix/store/d5n8kjrd1ilw3mxdk83c446nyigj8pci-hello.txt',
  },
  {
    method: 'recursive',
    algo: 'sha1',
    name: 'tree',
    hex: '8c6dbdc951b77c0863f6a25c56eb8af93a2b7547',
    path: '/nix/store/qnywydwalvvqzmpanqvpwli1hcb4m5fz-tree',
  },
  {
    method: 'flat',
    algo: 'sha512',
    name: 'hello.txt',
    hex: 'db3974a97f2407b7cae1ae637c0030687a11913274d578492558e39c16c017de84eacdc8c62fe34ee4e12b4b1428817f09b6a2760c3f8a664ceae94d2434a593',
    path: '/nix/store/igp1hl5ixxkv9gwsa65wpw00x26xm2k9-hello.txt',
  },
] as const;
