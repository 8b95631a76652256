package main

// Pairs of the differential cache harness: ADD of local files and tars, and of URLs
// from the pair's own loopback http server (--checksum, --unpack, Last-Modified).
//
// Not here: a URL whose content no longer matches an ADD --checksum that is cached.
// B after A then succeeds from the cache while B on a fresh root fails; that is
// BuildKit's behaviour too (the checksum is the source's identity), not a wrong reuse.

var addPairs = []cachePair{
	{
		name: "add/local-file-content",
		df:   "FROM {base}\nADD a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
		mut:  []ctxMut{{"write", "a.txt", "changed\n"}},
	},
	{
		name: "add/local-dir-file-added",
		df:   "FROM {base}\nADD d /d\n",
		ctx:  map[string]string{"d/a": "a\n"},
		mut:  []ctxMut{{"write", "d/b", "b\n"}},
	},
	{
		name: "add/tar-member-content",
		df:   "FROM {base}\nADD t.tar /x/\n",
		ctx:  map[string]string{"t.tar": "@tar:a.txt=a\n;d/=;d/b.txt=b\n"},
		mut:  []ctxMut{{"write", "t.tar", "@tar:a.txt=A\n;d/=;d/b.txt=b\n"}},
	},
	{
		name: "add/tar-member-mtime-only",
		df:   "FROM {base}\nADD t.tar /x/\n",
		ctx:  map[string]string{"t.tar": "@tar:mtime=1500000000;a.txt=a\n"},
		mut:  []ctxMut{{"keep", "t.tar", "@tar:mtime=1500000001;a.txt=a\n"}},
	},
	{
		name: "add/tgz-member-content",
		df:   "FROM {base}\nADD t.tar.gz /x/\n",
		ctx:  map[string]string{"t.tar.gz": "@tgz:a.txt=a\n"},
		mut:  []ctxMut{{"write", "t.tar.gz", "@tgz:a.txt=b\n"}},
	},
	{
		name: "add/tar-vs-copy-tar",
		df:   "FROM {base}\nADD t.tar /x/\n",
		dfB:  "FROM {base}\nCOPY t.tar /x/\n",
		ctx:  map[string]string{"t.tar": "@tar:a.txt=a\n"},
	},
	{
		name: "add/unpack-false",
		df:   "FROM {base}\nADD t.tar /x/\n",
		dfB:  "FROM {base}\nADD --unpack=false t.tar /x/\n",
		ctx:  map[string]string{"t.tar": "@tar:a.txt=a\n"},
	},
	{
		name: "add/tar-renamed-not-tar",
		df:   "FROM {base}\nADD t.tar /x/\n",
		ctx:  map[string]string{"t.tar": "@tar:a.txt=a\n"},
		mut:  []ctxMut{{"keep", "t.tar", "not a tar any more\n"}},
	},
	{
		name: "add/chmod-chown",
		df:   "FROM {base}\nADD --chmod=644 --chown=app a.txt /a.txt\n",
		dfB:  "FROM {base}\nADD --chmod=600 --chown=app a.txt /a.txt\n",
		ctx:  map[string]string{"a.txt": "a\n"},
	},
	{
		name:  "add/link",
		df:    "FROM {base}\nARG V=1\nRUN echo $V > /v\nADD --link t.tar /x/\n",
		ctx:   map[string]string{"t.tar": "@tar:a.txt=a\n"},
		argsB: []string{"--build-arg", "V=2"},
		hit:   []string{"ADD --link"},
	},
	{
		name: "add/url-content", sample: true,
		df:    "FROM {base}\nADD {http}/f.txt /f.txt\n",
		http:  map[string]string{"f.txt": "one\n"},
		httpB: map[string]string{"f.txt": "two\n"},
	},
	{
		name:     "add/url-last-modified-only",
		df:       "FROM {base}\nADD {http}/f.txt /f.txt\n",
		http:     map[string]string{"f.txt": "one\n"},
		httpModB: "2022-05-06T07:08:09Z",
	},
	{
		name:  "add/url-same-content",
		df:    "FROM {base}\nADD {http}/f.txt /f.txt\n",
		http:  map[string]string{"f.txt": "one\n"},
		httpB: map[string]string{"f.txt": "one\n", "g.txt": "unrelated\n"},
		hit:   []string{"*"},
	},
	{
		name: "add/url-checksum",
		df:   "FROM {base}\nADD --checksum=sha256:2c8b08da5ce60398e1f19af0e5dccc744df274b826abe585eaba68c525434806 {http}/f.txt /f.txt\n",
		dfB:  "FROM {base}\nADD --checksum=sha256:27dd8ed44a83ff94d557f9fd0412ed5a8cbca69ea04922d88c01184a07300a5a {http}/f.txt /f.txt\n",
		http: map[string]string{"f.txt": "one\n"}, httpB: map[string]string{"f.txt": "two\n"},
	},

	{
		name:  "add/url-unpack",
		df:    "FROM {base}\nADD --unpack=true {http}/t.tar /x/\n",
		http:  map[string]string{"t.tar": "@tar:a.txt=a\n"},
		httpB: map[string]string{"t.tar": "@tar:a.txt=b\n"},
	},
	{
		name: "add/url-unpack-flag",
		df:   "FROM {base}\nADD {http}/t.tar /x/\n",
		dfB:  "FROM {base}\nADD --unpack=true {http}/t.tar /x/\n",
		http: map[string]string{"t.tar": "@tar:a.txt=a\n"},
	},
	{
		name: "add/url-chmod",
		df:   "FROM {base}\nADD --chmod=644 {http}/f.txt /f.txt\n",
		dfB:  "FROM {base}\nADD --chmod=755 {http}/f.txt /f.txt\n",
		http: map[string]string{"f.txt": "one\n"},
	},
}
