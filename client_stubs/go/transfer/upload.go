package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"

	imagegatev1 "github.com/imagegate/imagegate/client_stubs/go/gen/imagegate/v1"
	"google.golang.org/grpc"
)

// EditFiles are the uploaded files of an edit. Images must hold at least one
// file; Mask and Markup are optional (and exclusive).
type EditFiles struct {
	Images []File
	Mask   *File
	Markup *File
}

// upload is a File and the FileChunk address its bytes go to.
type upload struct {
	file       File
	role       imagegatev1.FileRole
	imageIndex uint32
}

// declare writes the files' declarations into params (replacing whatever
// images, mask and markup it held) and lists them in upload order.
func (files EditFiles) declare(params *imagegatev1.EditParameters) []upload {
	params.Images = nil
	params.Mask, params.Markup = nil, nil
	var uploads []upload
	for i, image := range files.Images {
		params.Images = append(params.Images, image.info())
		uploads = append(uploads, upload{image, imagegatev1.FileRole_FILE_ROLE_IMAGE, uint32(i)})
	}
	if files.Mask != nil {
		params.Mask = files.Mask.info()
		uploads = append(uploads, upload{*files.Mask, imagegatev1.FileRole_FILE_ROLE_MASK, 0})
	}
	if files.Markup != nil {
		params.Markup = files.Markup.info()
		uploads = append(uploads, upload{*files.Markup, imagegatev1.FileRole_FILE_ROLE_MARKUP, 0})
	}
	return uploads
}

// errServerEnded marks a Send that failed because the server already ended the
// call: the real status is then read from the receiving side.
var errServerEnded = errors.New("the server ended the call during the upload")

// sendFiles sends first, then every upload's bytes in ChunkSize chunks. Send
// blocks while the HTTP/2 flow-control window is full, so at most one chunk is
// read ahead of what the transport accepted.
func sendFiles[Req any](
	send func(*Req) error, first *Req, uploads []upload, chunk func(*imagegatev1.FileChunk) *Req,
) error {
	if err := send(first); err != nil {
		return sendError(err)
	}
	buffer := make([]byte, ChunkSize)
	for _, u := range uploads {
		if err := sendFile(send, u, buffer, chunk); err != nil {
			return err
		}
	}
	return nil
}

func sendFile[Req any](
	send func(*Req) error, u upload, buffer []byte, chunk func(*imagegatev1.FileChunk) *Req,
) error {
	if u.file.open == nil {
		return errors.New("transfer.File values come from FileFromPath or FileFromBytes")
	}
	reader, err := u.file.open()
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", u.file.Filename, err)
	}
	defer reader.Close()
	var sent int64
	for {
		n, readErr := io.ReadFull(reader, buffer)
		if n > 0 {
			sent += int64(n)
			// A fresh slice per message: gRPC may still hold the previous one.
			data := append([]byte(nil), buffer[:n]...)
			message := chunk(&imagegatev1.FileChunk{
				Role: u.role, ImageIndex: u.imageIndex, Data: data,
			})
			if err := send(message); err != nil {
				return sendError(err)
			}
		}
		if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
			break
		}
		if readErr != nil {
			return fmt.Errorf("cannot read %s: %w", u.file.Filename, readErr)
		}
	}
	if sent != u.file.Size {
		return fmt.Errorf("%s changed during the upload (%d bytes declared, %d read)",
			u.file.Filename, u.file.Size, sent)
	}
	return nil
}

func sendError(err error) error {
	// grpc-go: io.EOF from Send means the stream ended from the server side and
	// the status is to be discovered with Recv / CloseAndRecv.
	if errors.Is(err, io.EOF) {
		return errServerEnded
	}
	return err
}

// uploadThen runs one upload: on a local failure (an unreadable file) it cancels
// the call and returns that failure; otherwise it hands over to finish, which
// reads the gateway's answer (or its error status).
func uploadThen[T any](
	ctx context.Context,
	start func(context.Context) (T, error),
	sendAll func(T) error,
	finish func(T) (*imagegatev1.ImagesResult, error),
) (*imagegatev1.ImagesResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := start(ctx)
	if err != nil {
		return nil, err
	}
	if err := sendAll(stream); err != nil && !errors.Is(err, errServerEnded) {
		return nil, err
	}
	return finish(stream)
}

// Edit calls CreateImageEdit: declares files in params, uploads them and returns
// the whole result (which must fit the client's receive limit; see EditStream).
func Edit(
	ctx context.Context, client imagegatev1.ImagesServiceClient,
	params *imagegatev1.EditParameters, files EditFiles, opts ...grpc.CallOption,
) (*imagegatev1.ImagesResult, error) {
	uploads := files.declare(params)
	type stream = grpc.ClientStreamingClient[imagegatev1.CreateImageEditRequest, imagegatev1.CreateImageEditResponse]
	return uploadThen(ctx,
		func(ctx context.Context) (stream, error) { return client.CreateImageEdit(ctx, opts...) },
		func(s stream) error {
			first := &imagegatev1.CreateImageEditRequest{
				Payload: &imagegatev1.CreateImageEditRequest_Parameters{Parameters: params},
			}
			return sendFiles(s.Send, first, uploads, func(c *imagegatev1.FileChunk) *imagegatev1.CreateImageEditRequest {
				return &imagegatev1.CreateImageEditRequest{Payload: &imagegatev1.CreateImageEditRequest_Chunk{Chunk: c}}
			})
		},
		func(s stream) (*imagegatev1.ImagesResult, error) {
			response, err := s.CloseAndRecv()
			if err != nil {
				return nil, err
			}
			return response.GetResult(), nil
		})
}

// EditStream calls CreateImageEditStream: like Edit, but the images arrive in
// slices, so any result fits gRPC's default 4 MiB receive limit. onPartial (may
// be nil) sees each partial image as it completes.
func EditStream(
	ctx context.Context, client imagegatev1.ImagesServiceClient,
	params *imagegatev1.EditParameters, files EditFiles, onPartial func(Image), opts ...grpc.CallOption,
) (*imagegatev1.ImagesResult, error) {
	uploads := files.declare(params)
	type stream = grpc.BidiStreamingClient[imagegatev1.CreateImageEditStreamRequest, imagegatev1.CreateImageEditStreamResponse]
	return uploadThen(ctx,
		func(ctx context.Context) (stream, error) { return client.CreateImageEditStream(ctx, opts...) },
		func(s stream) error {
			first := &imagegatev1.CreateImageEditStreamRequest{
				Payload: &imagegatev1.CreateImageEditStreamRequest_Parameters{Parameters: params},
			}
			err := sendFiles(s.Send, first, uploads, func(c *imagegatev1.FileChunk) *imagegatev1.CreateImageEditStreamRequest {
				return &imagegatev1.CreateImageEditStreamRequest{Payload: &imagegatev1.CreateImageEditStreamRequest_Chunk{Chunk: c}}
			})
			if err != nil {
				return err
			}
			return s.CloseSend()
		},
		func(s stream) (*imagegatev1.ImagesResult, error) { return Collect(s.Recv, onPartial) })
}

// Variation calls CreateImageVariation with image as the input.
func Variation(
	ctx context.Context, client imagegatev1.ImagesServiceClient,
	params *imagegatev1.VariationParameters, image File, opts ...grpc.CallOption,
) (*imagegatev1.ImagesResult, error) {
	params.Image = image.info()
	uploads := []upload{{image, imagegatev1.FileRole_FILE_ROLE_IMAGE, 0}}
	type stream = grpc.ClientStreamingClient[imagegatev1.CreateImageVariationRequest, imagegatev1.CreateImageVariationResponse]
	return uploadThen(ctx,
		func(ctx context.Context) (stream, error) { return client.CreateImageVariation(ctx, opts...) },
		func(s stream) error {
			first := &imagegatev1.CreateImageVariationRequest{
				Payload: &imagegatev1.CreateImageVariationRequest_Parameters{Parameters: params},
			}
			return sendFiles(s.Send, first, uploads, func(c *imagegatev1.FileChunk) *imagegatev1.CreateImageVariationRequest {
				return &imagegatev1.CreateImageVariationRequest{Payload: &imagegatev1.CreateImageVariationRequest_Chunk{Chunk: c}}
			})
		},
		func(s stream) (*imagegatev1.ImagesResult, error) {
			response, err := s.CloseAndRecv()
			if err != nil {
				return nil, err
			}
			return response.GetResult(), nil
		})
}

// VariationStream calls CreateImageVariationStream: like Variation, with the
// images delivered in slices.
func VariationStream(
	ctx context.Context, client imagegatev1.ImagesServiceClient,
	params *imagegatev1.VariationParameters, image File, opts ...grpc.CallOption,
) (*imagegatev1.ImagesResult, error) {
	params.Image = image.info()
	uploads := []upload{{image, imagegatev1.FileRole_FILE_ROLE_IMAGE, 0}}
	type stream = grpc.BidiStreamingClient[imagegatev1.CreateImageVariationStreamRequest, imagegatev1.CreateImageVariationStreamResponse]
	return uploadThen(ctx,
		func(ctx context.Context) (stream, error) { return client.CreateImageVariationStream(ctx, opts...) },
		func(s stream) error {
			first := &imagegatev1.CreateImageVariationStreamRequest{
				Payload: &imagegatev1.CreateImageVariationStreamRequest_Parameters{Parameters: params},
			}
			err := sendFiles(s.Send, first, uploads, func(c *imagegatev1.FileChunk) *imagegatev1.CreateImageVariationStreamRequest {
				return &imagegatev1.CreateImageVariationStreamRequest{Payload: &imagegatev1.CreateImageVariationStreamRequest_Chunk{Chunk: c}}
			})
			if err != nil {
				return err
			}
			return s.CloseSend()
		},
		func(s stream) (*imagegatev1.ImagesResult, error) { return Collect(s.Recv, nil) })
}

// GenerateStream calls CreateImageStream and collects the images.
func GenerateStream(
	ctx context.Context, client imagegatev1.ImagesServiceClient,
	params *imagegatev1.GenerationParameters, onPartial func(Image), opts ...grpc.CallOption,
) (*imagegatev1.ImagesResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the call if Collect returns early on a broken stream
	stream, err := client.CreateImageStream(ctx, &imagegatev1.CreateImageStreamRequest{Parameters: params}, opts...)
	if err != nil {
		return nil, err
	}
	return Collect(stream.Recv, onPartial)
}
