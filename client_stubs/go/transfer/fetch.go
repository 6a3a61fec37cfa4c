package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	imagegatev1 "github.com/imagegate/imagegate/client_stubs/go/gen/imagegate/v1"
)

// ErrFetch wraps every way fetching a stored or URL image can fail: an expired or
// altered link (HTTP 403: ask StoredImagesService.GetStoredImage for a fresh
// one), a deleted object (404), a body larger than allowed or than the result
// says, a timeout. Its messages never show a link's query (its signature is the
// credential).
var ErrFetch = errors.New("imagegate image download failed")

// DefaultMaxImageBytes bounds one downloaded image (an image model's largest is
// tens of MiB).
const DefaultMaxImageBytes = 64 << 20

// DefaultFetchTimeout bounds one download, first byte to last.
const DefaultFetchTimeout = time.Minute

// Fetcher downloads the images of a result that are not inline: stored images
// (DELIVERY_STORED) by their link, URL images (DALL-E) by their URL. The zero
// value uses http.DefaultClient, DefaultMaxImageBytes and DefaultFetchTimeout.
type Fetcher struct {
	// Client makes the GET requests (a plain one: links carry their own signature).
	Client *http.Client
	// MaxBytes bounds one image; 0 means DefaultMaxImageBytes.
	MaxBytes int64
	// Timeout bounds one download; 0 means DefaultFetchTimeout.
	Timeout time.Duration
}

// ImageBytes returns each image of result as bytes, in order, with a zero Fetcher:
// inline data as it is, stored and URL images downloaded.
func ImageBytes(ctx context.Context, result *imagegatev1.ImagesResult) ([][]byte, error) {
	return Fetcher{}.ImageBytes(ctx, result)
}

// ImageBytes returns each image of result as bytes, in order, whatever the
// delivery: inline data as it is (a streamed result after Assembler.Finish too),
// stored images fetched by their link and checked against their size_bytes, URL
// images fetched by their URL.
func (f Fetcher) ImageBytes(ctx context.Context, result *imagegatev1.ImagesResult) ([][]byte, error) {
	images := make([][]byte, 0, len(result.GetImages()))
	for index, image := range result.GetImages() {
		switch content := image.GetContent().(type) {
		case *imagegatev1.GeneratedImage_Data:
			images = append(images, content.Data)
		case *imagegatev1.GeneratedImage_Stored:
			data, err := f.Stored(ctx, content.Stored)
			if err != nil {
				return nil, err
			}
			images = append(images, data)
		case *imagegatev1.GeneratedImage_Url:
			data, err := f.get(ctx, content.Url, f.maxBytes())
			if err != nil {
				return nil, err
			}
			images = append(images, data)
		default:
			return nil, fmt.Errorf("%w: image %d has no bytes: on a streaming RPC they came in ImageChunk slices (use an Assembler)", ErrFetch, index)
		}
	}
	return images, nil
}

// Stored downloads one stored image by its link.
func (f Fetcher) Stored(ctx context.Context, stored *imagegatev1.StoredImage) ([]byte, error) {
	size := int64(stored.GetSizeBytes())
	if size > f.maxBytes() {
		return nil, fmt.Errorf("%w: %s is %d bytes, over %d", ErrFetch, stored.GetObject(), size, f.maxBytes())
	}
	data, err := f.get(ctx, stored.GetUrl(), size)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("%w: %s: %d bytes arrived of %d", ErrFetch, stored.GetObject(), len(data), size)
	}
	return data, nil
}

func (f Fetcher) maxBytes() int64 {
	if f.MaxBytes > 0 {
		return f.MaxBytes
	}
	return DefaultMaxImageBytes
}

func (f Fetcher) get(ctx context.Context, url string, limit int64) ([]byte, error) {
	shown, _, _ := strings.Cut(url, "?")
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("%w: %s: not an http(s) URL", ErrFetch, shown)
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not a valid URL", ErrFetch, shown)
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	response, err := client.Do(request)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %s: timed out", ErrFetch, shown)
		}
		return nil, fmt.Errorf("%w: %s: the request failed", ErrFetch, shown)
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		hint := ""
		if response.StatusCode == http.StatusForbidden {
			hint = " (an expired or altered link?)"
		}
		return nil, fmt.Errorf("%w: %s: HTTP %d%s", ErrFetch, shown, response.StatusCode, hint)
	}
	if declared, err := strconv.ParseInt(response.Header.Get("Content-Length"), 10, 64); err == nil && declared > limit {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrFetch, shown, limit)
	}
	data, err := io.ReadAll(io.LimitReader(response.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: the body broke off", ErrFetch, shown)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrFetch, shown, limit)
	}
	return data, nil
}
