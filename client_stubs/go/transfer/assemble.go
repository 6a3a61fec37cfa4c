package transfer

import (
	"errors"
	"fmt"
	"io"

	imagegatev1 "github.com/imagegate/imagegate/client_stubs/go/gen/imagegate/v1"
)

// Image is one image reassembled from its slices.
type Image struct {
	// ImageIndex is the final image's index in ImagesResult.Images (for partial
	// images: the image previewed, when the gateway knows it, else 0).
	ImageIndex uint32
	// PartialIndex is set for a partial (preview) image, nil for a final one.
	PartialIndex *uint32
	Data         []byte
}

// ErrStreamProtocol wraps every way a streamed answer can break the contract (a
// gap or overlap in an image's slices, a slice after the image was complete, an
// image missing from the result...): writing the bytes anyway would make a file
// that looks fine until it is opened.
var ErrStreamProtocol = errors.New("imagegate stream broke the contract")

type slot struct {
	image   uint32
	partial int64 // -1 for the final image
}

// Assembler turns ImageChunk slices, fed in arrival order, into whole images.
// The zero value is ready to use.
type Assembler struct {
	open   map[slot][]byte
	finals map[uint32][]byte
}

func describe(s slot) string {
	if s.partial < 0 {
		return fmt.Sprintf("image %d", s.image)
	}
	return fmt.Sprintf("partial image %d of image %d", s.partial, s.image)
}

// Feed adds one slice. It returns the image this slice completed (its last
// slice), or nil while the image is still incomplete.
func (a *Assembler) Feed(chunk *imagegatev1.ImageChunk) (*Image, error) {
	if a.open == nil {
		a.open, a.finals = map[slot][]byte{}, map[uint32][]byte{}
	}
	key := slot{chunk.GetImageIndex(), -1}
	if chunk.PartialImageIndex != nil {
		key.partial = int64(chunk.GetPartialImageIndex())
	}
	if _, done := a.finals[key.image]; done && key.partial < 0 {
		return nil, fmt.Errorf("%w: %s received again after it was complete", ErrStreamProtocol, describe(key))
	}
	buffer := a.open[key]
	if chunk.GetOffset() != uint64(len(buffer)) {
		return nil, fmt.Errorf("%w: %s: slice at offset %d, expected %d",
			ErrStreamProtocol, describe(key), chunk.GetOffset(), len(buffer))
	}
	buffer = append(buffer, chunk.GetData()...)
	if !chunk.GetLast() {
		a.open[key] = buffer
		return nil, nil
	}
	delete(a.open, key)
	image := &Image{ImageIndex: key.image, Data: buffer}
	if key.partial >= 0 {
		partial := uint32(key.partial)
		image.PartialIndex = &partial
	} else {
		a.finals[key.image] = buffer
	}
	return image, nil
}

// Finish checks that every image is complete and puts the final images' bytes
// into result (its GeneratedImage.data, left empty on the streaming RPCs), so a
// streamed result reads exactly like a unary one. URL and stored images are left as
// they are (ImageBytes fetches them).
func (a *Assembler) Finish(result *imagegatev1.ImagesResult) (*imagegatev1.ImagesResult, error) {
	for key, buffer := range a.open {
		return nil, fmt.Errorf("%w: %s incomplete: the stream ended after %d bytes without its last slice",
			ErrStreamProtocol, describe(key), len(buffer))
	}
	for index, image := range result.GetImages() {
		if image.GetUrl() != "" || image.GetStored() != nil || len(image.GetData()) > 0 {
			continue // a URL, a stored image (DELIVERY_STORED), or bytes already
		}
		data, ok := a.finals[uint32(index)]
		if !ok {
			return nil, fmt.Errorf("%w: image %d is in the result but was never sent", ErrStreamProtocol, index)
		}
		image.Content = &imagegatev1.GeneratedImage_Data{Data: data}
	}
	for index := range a.finals {
		if int(index) >= len(result.GetImages()) {
			return nil, fmt.Errorf("%w: image %d was sent but is not in the result (%d images)",
				ErrStreamProtocol, index, len(result.GetImages()))
		}
	}
	return result, nil
}

// StreamEvent is what the three streaming responses have in common
// (CreateImageStreamResponse, CreateImageEditStreamResponse,
// CreateImageVariationStreamResponse).
type StreamEvent interface {
	GetImageChunk() *imagegatev1.ImageChunk
	GetResult() *imagegatev1.ImagesResult
}

// Collect reads a streamed answer to its end through recv (a stream's Recv
// method) and returns its ImagesResult with every final image's bytes in place.
// onPartial (may be nil) is called with each partial image as it completes. A
// gRPC error ends collection and is returned unchanged.
func Collect[R StreamEvent](recv func() (R, error), onPartial func(Image)) (*imagegatev1.ImagesResult, error) {
	var assembler Assembler
	var result *imagegatev1.ImagesResult
	for {
		event, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if chunk := event.GetImageChunk(); chunk != nil {
			image, err := assembler.Feed(chunk)
			if err != nil {
				return nil, err
			}
			if image != nil && image.PartialIndex != nil && onPartial != nil {
				onPartial(*image)
			}
		} else if got := event.GetResult(); got != nil {
			if result != nil {
				return nil, fmt.Errorf("%w: the server sent two results", ErrStreamProtocol)
			}
			result = got
		} else {
			return nil, fmt.Errorf("%w: the server sent an empty stream message", ErrStreamProtocol)
		}
	}
	if result == nil {
		return nil, fmt.Errorf("%w: the stream ended without a result", ErrStreamProtocol)
	}
	return assembler.Finish(result)
}
