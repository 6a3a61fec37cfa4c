package transfer

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	imagegatev1 "github.com/imagegate/imagegate/client_stubs/go/gen/imagegate/v1"
)

// ChunkSize is the size of the FileChunk messages sent: what the contract
// recommends (the gateway accepts up to 1 MiB).
const ChunkSize = 64 * 1024

// The gateway takes a file name of at most this many bytes.
const maxFilenameBytes = 255

// File is one file to upload: what the parameters message declares about it and
// a way to read its bytes when the upload reaches it.
type File struct {
	// Filename sent to OpenAI; empty lets the gateway name it after its type.
	Filename string
	// ContentType is image/png, image/jpeg or image/webp as read from the magic
	// bytes, or empty (the gateway then sniffs, and rejects other types itself).
	ContentType string
	// Size in bytes, declared so the gateway can refuse an oversized file before
	// any byte is sent and notice a truncated one.
	Size int64

	open func() (io.ReadCloser, error)
}

// FileFromPath declares the file at path. It reads only the first bytes (for the
// type) now; the rest is read chunk by chunk during the upload.
func FileFromPath(path string) (File, error) {
	handle, err := os.Open(path)
	if err != nil {
		return File{}, fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer handle.Close()
	stat, err := handle.Stat()
	if err != nil {
		return File{}, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if stat.Size() == 0 {
		return File{}, fmt.Errorf("cannot upload %s: the file is empty", path)
	}
	head := make([]byte, 16)
	n, _ := io.ReadFull(handle, head)
	file := File{
		ContentType: sniffContentType(head[:n]),
		Size:        stat.Size(),
		open:        func() (io.ReadCloser, error) { return os.Open(path) },
	}
	if name := filepath.Base(path); len(name) <= maxFilenameBytes {
		file.Filename = name
	}
	return file, nil
}

// FileFromBytes declares an in-memory file. filename may be empty.
func FileFromBytes(filename string, data []byte) File {
	return File{
		Filename:    filename,
		ContentType: sniffContentType(data),
		Size:        int64(len(data)),
		open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		},
	}
}

func (f File) info() *imagegatev1.FileInfo {
	size := uint64(f.Size)
	return &imagegatev1.FileInfo{
		Filename:    f.Filename,
		ContentType: f.ContentType,
		SizeBytes:   &size,
	}
}

// sniffContentType names the three types the gateway accepts, from magic bytes.
func sniffContentType(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(head, []byte{0xff, 0xd8, 0xff}):
		return "image/jpeg"
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		return "image/webp"
	}
	return ""
}
