package kbuild

import "io/fs"

// Source is one file of the driver's sources, as the out-of-tree build
// copies it.
type Source struct {
	Rel  string // slash-separated path relative to the source directory
	Mode fs.FileMode
	Data []byte
}

// Sources returns the driver's source files in srcDir, sorted by path,
// without build products and editor files: what BuildModule copies, for
// packaging the same sources another way (DKMS).
func Sources(srcDir string) ([]Source, error) {
	files, err := readSources(srcDir)
	if err != nil {
		return nil, err
	}
	out := make([]Source, len(files))
	for i, f := range files {
		out[i] = Source{Rel: f.rel, Mode: f.mode, Data: f.data}
	}
	return out, nil
}
