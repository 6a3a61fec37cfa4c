package transfer

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	imagegatev1 "github.com/imagegate/imagegate/client_stubs/go/gen/imagegate/v1"
)

func stored(url string, size int) *imagegatev1.GeneratedImage {
	return &imagegatev1.GeneratedImage{Content: &imagegatev1.GeneratedImage_Stored{
		Stored: &imagegatev1.StoredImage{Object: "2026-12-08/1405/team/abc.png", Url: url, SizeBytes: uint64(size)},
	}}
}

func TestImageBytesReadsInlineAndStoredImages(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 5000)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("signature") != "good" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_, _ = w.Write(body)
	}))
	defer server.Close()
	result := &imagegatev1.ImagesResult{Images: []*imagegatev1.GeneratedImage{
		{Content: &imagegatev1.GeneratedImage_Data{Data: []byte("inline")}},
		stored(server.URL+"/o/k?signature=good", len(body)),
	}}
	images, err := ImageBytes(context.Background(), result)
	if err != nil {
		t.Fatal(err)
	}
	if string(images[0]) != "inline" || !bytes.Equal(images[1], body) {
		t.Fatalf("got %d and %d bytes", len(images[0]), len(images[1]))
	}

	forged := &imagegatev1.ImagesResult{Images: []*imagegatev1.GeneratedImage{stored(server.URL+"/o/k?signature=bad", len(body))}}
	_, err = ImageBytes(context.Background(), forged)
	if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "HTTP 403") || strings.Contains(err.Error(), "signature") {
		t.Fatalf("want a 403 ErrFetch without the link's query, got %v", err)
	}
	// More bytes than the result states: refused, not truncated.
	short := &imagegatev1.ImagesResult{Images: []*imagegatev1.GeneratedImage{stored(server.URL+"/o/k?signature=good", 100)}}
	if _, err = ImageBytes(context.Background(), short); !errors.Is(err, ErrFetch) {
		t.Fatalf("want ErrFetch for a body over its size, got %v", err)
	}
	capped := Fetcher{MaxBytes: 1000}
	if _, err = capped.ImageBytes(context.Background(), result); !errors.Is(err, ErrFetch) {
		t.Fatalf("want ErrFetch over MaxBytes, got %v", err)
	}
}

func TestImageBytesOfAStreamedResultWithoutItsSlices(t *testing.T) {
	result := &imagegatev1.ImagesResult{Images: []*imagegatev1.GeneratedImage{{}}}
	if _, err := ImageBytes(context.Background(), result); !errors.Is(err, ErrFetch) {
		t.Fatalf("want ErrFetch, got %v", err)
	}
}
