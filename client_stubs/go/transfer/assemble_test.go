package transfer

import (
	"bytes"
	"errors"
	"io"
	"testing"

	imagegatev1 "github.com/imagegate/imagegate/client_stubs/go/gen/imagegate/v1"
	"google.golang.org/protobuf/proto"
)

func chunk(image uint32, partial *uint32, offset uint64, data string, last bool) *imagegatev1.CreateImageStreamResponse {
	return &imagegatev1.CreateImageStreamResponse{Event: &imagegatev1.CreateImageStreamResponse_ImageChunk{
		ImageChunk: &imagegatev1.ImageChunk{
			ImageIndex: image, PartialImageIndex: partial, Offset: offset, Data: []byte(data), Last: last,
		},
	}}
}

func result(images int) *imagegatev1.CreateImageStreamResponse {
	r := &imagegatev1.ImagesResult{}
	for range images {
		r.Images = append(r.Images, &imagegatev1.GeneratedImage{})
	}
	return &imagegatev1.CreateImageStreamResponse{Event: &imagegatev1.CreateImageStreamResponse_Result{Result: r}}
}

// replay is a stream's Recv over fixed messages, then io.EOF.
func replay(events ...*imagegatev1.CreateImageStreamResponse) func() (*imagegatev1.CreateImageStreamResponse, error) {
	return func() (*imagegatev1.CreateImageStreamResponse, error) {
		if len(events) == 0 {
			return nil, io.EOF
		}
		next := events[0]
		events = events[1:]
		return next, nil
	}
}

func TestCollectPutsSlicesBackTogetherAndReportsPartials(t *testing.T) {
	var partials []Image
	got, err := Collect(replay(
		chunk(0, proto.Uint32(0), 0, "pre", true),
		chunk(1, nil, 0, "bb", false),
		chunk(0, nil, 0, "aa", false),
		chunk(1, nil, 2, "BB", true),
		chunk(0, nil, 2, "AA", true),
		result(2),
	), func(image Image) { partials = append(partials, image) })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"aaAA", "bbBB"}; string(got.Images[0].GetData()) != want[0] || string(got.Images[1].GetData()) != want[1] {
		t.Fatalf("images %q %q, want %q", got.Images[0].GetData(), got.Images[1].GetData(), want)
	}
	if len(partials) != 1 || !bytes.Equal(partials[0].Data, []byte("pre")) || *partials[0].PartialIndex != 0 {
		t.Fatalf("partials %+v", partials)
	}
}

func TestCollectRejectsBrokenStreams(t *testing.T) {
	cases := map[string][]*imagegatev1.CreateImageStreamResponse{
		"gap":             {chunk(0, nil, 0, "aa", false), chunk(0, nil, 3, "a", true), result(1)},
		"overlap":         {chunk(0, nil, 0, "aa", false), chunk(0, nil, 1, "a", true), result(1)},
		"no last slice":   {chunk(0, nil, 0, "aa", false), result(1)},
		"image resent":    {chunk(0, nil, 0, "a", true), chunk(0, nil, 0, "a", true), result(1)},
		"image not sent":  {chunk(0, nil, 0, "a", true), result(2)},
		"image not in it": {chunk(0, nil, 0, "a", true), chunk(1, nil, 0, "b", true), result(1)},
		"no result":       {chunk(0, nil, 0, "a", true)},
		"two results":     {chunk(0, nil, 0, "a", true), result(1), result(1)},
	}
	for name, events := range cases {
		if _, err := Collect(replay(events...), nil); !errors.Is(err, ErrStreamProtocol) {
			t.Errorf("%s: got %v, want ErrStreamProtocol", name, err)
		}
	}
}

func TestCollectReturnsTheStreamError(t *testing.T) {
	broken := errors.New("rpc error")
	_, err := Collect(func() (*imagegatev1.CreateImageStreamResponse, error) { return nil, broken }, nil)
	if !errors.Is(err, broken) {
		t.Fatalf("got %v", err)
	}
}

func TestEditFilesDeclareEveryFileInUploadOrder(t *testing.T) {
	png := FileFromBytes("a.png", []byte("\x89PNG\r\n\x1a\nrest"))
	mask := FileFromBytes("", []byte("\x89PNG\r\n\x1a\nmask!"))
	params := &imagegatev1.EditParameters{Prompt: "p"}
	uploads := EditFiles{Images: []File{png, FileFromBytes("b.jpg", []byte{0xff, 0xd8, 0xff, 1})}, Mask: &mask}.declare(params)
	if len(params.Images) != 2 || params.Images[1].GetContentType() != "image/jpeg" || params.Images[0].GetSizeBytes() != 12 {
		t.Fatalf("images declared as %v", params.Images)
	}
	if params.Mask.GetContentType() != "image/png" || params.Mask.GetSizeBytes() != 13 {
		t.Fatalf("mask declared as %v", params.Mask)
	}
	if len(uploads) != 3 || uploads[1].imageIndex != 1 || uploads[2].role != imagegatev1.FileRole_FILE_ROLE_MASK {
		t.Fatalf("uploads %+v", uploads)
	}
}

func TestSendFilesChunksAt64KiB(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 2*ChunkSize+5)
	var sent []*imagegatev1.FileChunk
	first := &imagegatev1.FileChunk{}
	err := sendFiles(func(c *imagegatev1.FileChunk) error {
		if c != first {
			sent = append(sent, c)
		}
		return nil
	}, first, []upload{{FileFromBytes("x", data), imagegatev1.FileRole_FILE_ROLE_IMAGE, 0}},
		func(c *imagegatev1.FileChunk) *imagegatev1.FileChunk { return c })
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 3 || len(sent[0].Data) != ChunkSize || len(sent[2].Data) != 5 {
		t.Fatalf("sent %d chunks", len(sent))
	}
}
