// Command example calls a running imagegate gateway the way a Go service would,
// through this module's generated stubs and its transfer helpers, and checks what
// comes back. CI runs it against a gateway on the embedded emulator.
//
//	IMAGEGATE_TARGET=127.0.0.1:50051 [IMAGEGATE_TOKEN=igk_...] go run ./example
//
// With IMAGEGATE_LONG_ERROR_TARGET set to a gateway whose upstream answers every
// call with an error whose code and param are thousands of characters long, it
// also checks that this default client still gets the gateway's status and
// x-request-id. It exits 1 if any check fails.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"time"

	imagegatev1 "github.com/imagegate/imagegate/client_stubs/go/gen/imagegate/v1"
	"github.com/imagegate/imagegate/client_stubs/go/transfer"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// gRPC's default receive limit, which this client keeps: the streamed result
// must exceed it to show that the streaming RPCs make any size fit.
const defaultReceiveLimit = 4 * 1024 * 1024

// A long prompt gives the emulator's pictures enough detail that five
// 3840x2160 JPEGs come to about 5 MiB.
const detailedPrompt = "a detailed lighthouse on a rocky coast at dusk with waves crashing " +
	"seagulls flying clouds glowing orange and purple fishing boats returning home lanterns " +
	"lit on the pier a keeper waving from the gallery rain starting to fall over the distant " +
	"hills and a rainbow"

var (
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
	jpegMagic = []byte{0xff, 0xd8, 0xff}
)

type checks struct{ passed, failed int }

func (c *checks) run(name string, check func() error) {
	started := time.Now()
	if err := check(); err != nil {
		c.failed++
		fmt.Printf("FAIL %s: %v\n", name, err)
		return
	}
	c.passed++
	fmt.Printf("ok   %s (%.1fs)\n", name, time.Since(started).Seconds())
}

func main() {
	target := os.Getenv("IMAGEGATE_TARGET")
	if target == "" {
		target = "127.0.0.1:50051"
	}
	// grpc.NewClient with no size options: gRPC's default 4 MiB receive limit.
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot create a client:", err)
		os.Exit(1)
	}
	defer conn.Close()
	client := imagegatev1.NewImagesServiceClient(conn)
	ctx := context.Background()
	if token := os.Getenv("IMAGEGATE_TOKEN"); token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}

	var c checks
	var first []byte
	c.run("unary CreateImage", func() error {
		first, err = generateOne(ctx, client)
		return err
	})
	c.run("stored results: links fetched with a plain GET (unary and streamed)", func() error {
		return storedResults(ctx, client)
	})
	c.run("streamed result over 4 MiB at the default receive limit", func() error {
		return streamLarge(ctx, client)
	})
	c.run("edit upload with a mask (CreateImageEditStream)", func() error {
		if first == nil {
			return errors.New("no input image: the unary check failed")
		}
		return editWithMask(ctx, client, first)
	})
	c.run("INVALID_ARGUMENT with BadRequest field violations", func() error {
		return invalidArgument(ctx, client)
	})
	c.run("upload refused mid-way reports the gateway's status", func() error {
		return refusedUpload(ctx, client)
	})
	c.run("GetQuota: the caller's client id and spend today", func() error {
		return quota(ctx, imagegatev1.NewQuotaServiceClient(conn))
	})
	if longErrorTarget := os.Getenv("IMAGEGATE_LONG_ERROR_TARGET"); longErrorTarget != "" {
		c.run("upstream error with 5,000-character code and param: status and x-request-id", func() error {
			return longUpstreamError(ctx, longErrorTarget)
		})
	}
	fmt.Printf("go: %d passed, %d failed\n", c.passed, c.failed)
	if c.failed > 0 {
		os.Exit(1)
	}
}

func generateOne(ctx context.Context, client imagegatev1.ImagesServiceClient) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	response, err := client.CreateImage(ctx, &imagegatev1.CreateImageRequest{
		Parameters: &imagegatev1.GenerationParameters{
			Prompt:       "a red fox in the snow",
			Model:        proto.String("gpt-image-2"),
			Size:         proto.String("1024x1024"),
			OutputFormat: imagegatev1.OutputFormat_OUTPUT_FORMAT_PNG,
		},
	})
	if err != nil {
		return nil, err
	}
	images := response.GetResult().GetImages()
	if len(images) != 1 || !bytes.HasPrefix(images[0].GetData(), pngMagic) {
		return nil, fmt.Errorf("want 1 PNG image, got %d images", len(images))
	}
	fmt.Printf("     1 PNG, %d bytes\n", len(images[0].GetData()))
	return images[0].GetData(), nil
}

// storedResults asks for DELIVERY_STORED: the gateway writes each image to its
// result store and answers with links, which transfer.ImageBytes fetches.
func storedResults(ctx context.Context, client imagegatev1.ImagesServiceClient) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	parameters := &imagegatev1.GenerationParameters{
		Prompt:   "a paper boat on a pond",
		Model:    proto.String("gpt-image-2"),
		N:        proto.Uint32(2),
		Size:     proto.String("1024x1024"),
		Delivery: imagegatev1.Delivery_DELIVERY_STORED,
	}
	response, err := client.CreateImage(ctx, &imagegatev1.CreateImageRequest{Parameters: parameters})
	if err != nil {
		return err
	}
	streamed, err := transfer.GenerateStream(ctx, client, parameters, nil)
	if err != nil {
		return err
	}
	for _, result := range []*imagegatev1.ImagesResult{response.GetResult(), streamed} {
		for i, generated := range result.GetImages() {
			if generated.GetStored() == nil {
				return fmt.Errorf("image %d is not stored", i)
			}
		}
		images, err := transfer.ImageBytes(ctx, result)
		if err != nil {
			return err
		}
		if len(images) != 2 || !bytes.HasPrefix(images[0], pngMagic) || !bytes.HasPrefix(images[1], pngMagic) {
			return fmt.Errorf("want 2 PNGs from the links, got %d images", len(images))
		}
	}
	stored := response.GetResult().GetImages()[0].GetStored()
	fmt.Printf("     2+2 stored PNGs, e.g. %s (%d bytes)\n", stored.GetObject(), stored.GetSizeBytes())
	return nil
}

func streamLarge(ctx context.Context, client imagegatev1.ImagesServiceClient) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	result, err := transfer.GenerateStream(ctx, client, &imagegatev1.GenerationParameters{
		Prompt:       detailedPrompt,
		Model:        proto.String("gpt-image-2"),
		N:            proto.Uint32(5),
		Size:         proto.String("3840x2160"),
		OutputFormat: imagegatev1.OutputFormat_OUTPUT_FORMAT_JPEG,
	}, nil)
	if err != nil {
		return err
	}
	total := 0
	for i, generated := range result.GetImages() {
		if !bytes.HasPrefix(generated.GetData(), jpegMagic) {
			return fmt.Errorf("image %d is not a JPEG", i)
		}
		total += len(generated.GetData())
	}
	if len(result.GetImages()) != 5 {
		return fmt.Errorf("want 5 images, got %d", len(result.GetImages()))
	}
	if total <= defaultReceiveLimit {
		return fmt.Errorf("the result is %d bytes, not over the 4 MiB limit", total)
	}
	fmt.Printf("     5 JPEGs, %.2f MiB in all\n", float64(total)/(1<<20))
	return nil
}

func editWithMask(ctx context.Context, client imagegatev1.ImagesServiceClient, input []byte) error {
	config, err := png.DecodeConfig(bytes.NewReader(input))
	if err != nil {
		return fmt.Errorf("the input is not a PNG: %w", err)
	}
	// The mask goes up from a file and the image from memory, to use both helpers.
	maskPath := filepath.Join(os.TempDir(), fmt.Sprintf("imagegate-go-mask-%d.png", os.Getpid()))
	if err := os.WriteFile(maskPath, centreMask(config.Width, config.Height), 0o600); err != nil {
		return err
	}
	defer os.Remove(maskPath)
	mask, err := transfer.FileFromPath(maskPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	result, err := transfer.EditStream(ctx, client, &imagegatev1.EditParameters{
		Prompt: "add a full moon",
		Model:  proto.String("gpt-image-2"),
	}, transfer.EditFiles{
		Images: []transfer.File{transfer.FileFromBytes("fox.png", input)},
		Mask:   &mask,
	}, nil)
	if err != nil {
		return err
	}
	if len(result.GetImages()) != 1 {
		return fmt.Errorf("want 1 image, got %d", len(result.GetImages()))
	}
	edited, err := png.DecodeConfig(bytes.NewReader(result.GetImages()[0].GetData()))
	if err != nil {
		return fmt.Errorf("the edit is not a PNG: %w", err)
	}
	fmt.Printf("     edited %dx%d PNG (mask %d bytes)\n", edited.Width, edited.Height, mask.Size)
	return nil
}

// centreMask is opaque except for a transparent square in the middle: the area
// to edit.
func centreMask(width, height int) []byte {
	mask := image.NewNRGBA(image.Rect(0, 0, width, height))
	for y := range height {
		for x := range width {
			alpha := uint8(255)
			if x > width/4 && x < 3*width/4 && y > height/4 && y < 3*height/4 {
				alpha = 0
			}
			mask.SetNRGBA(x, y, color.NRGBA{A: alpha})
		}
	}
	var out bytes.Buffer
	_ = png.Encode(&out, mask) // writing to memory cannot fail
	return out.Bytes()
}

func invalidArgument(ctx context.Context, client imagegatev1.ImagesServiceClient) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := client.CreateImage(ctx, &imagegatev1.CreateImageRequest{
		Parameters: &imagegatev1.GenerationParameters{
			Prompt: "a red fox", Model: proto.String("gpt-image-2"), N: proto.Uint32(0),
		},
	})
	got := status.Convert(err)
	if got.Code() != codes.InvalidArgument {
		return fmt.Errorf("want INVALID_ARGUMENT, got %v: %s", got.Code(), got.Message())
	}
	for _, detail := range got.Details() {
		badRequest, ok := detail.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, violation := range badRequest.GetFieldViolations() {
			fmt.Printf("     BadRequest: %s: %s\n", violation.GetField(), violation.GetDescription())
			if violation.GetField() == "parameters.n" {
				return nil
			}
		}
	}
	return fmt.Errorf("no BadRequest field violation for parameters.n in %v", got.Details())
}

// refusedUpload sends a dall-e-2 edit whose image is over that model's 4 MB cap:
// the gateway ends the call while the client still has megabytes to send, and
// the helper must stop sending and report the gateway's status, not hang or
// report its own write error.
func refusedUpload(ctx context.Context, client imagegatev1.ImagesServiceClient) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	oversized := append(append([]byte(nil), pngMagic...), make([]byte, 8<<20)...)
	_, err := transfer.Edit(ctx, client, &imagegatev1.EditParameters{
		Prompt: "too big", Model: proto.String("dall-e-2"),
	}, transfer.EditFiles{Images: []transfer.File{transfer.FileFromBytes("big.png", oversized)}})
	got := status.Convert(err)
	if got.Code() != codes.InvalidArgument {
		return fmt.Errorf("want INVALID_ARGUMENT, got %v: %s", got.Code(), got.Message())
	}
	fmt.Printf("     %v: %s\n", got.Code(), got.Message())
	return nil
}

// quota asks QuotaService who the caller is and what it spent today: after the
// images above, a client with a token must be named and have spent something.
func quota(ctx context.Context, quotas imagegatev1.QuotaServiceClient) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	answer, err := quotas.GetQuota(ctx, &imagegatev1.GetQuotaRequest{})
	if err != nil {
		return err
	}
	spent := answer.GetSpentTodayUsdMicros()
	fmt.Printf("     client %s: $%d.%06d spent today (UTC)\n", answer.GetClient(), spent/1e6, spent%1e6)
	if os.Getenv("IMAGEGATE_TOKEN") != "" && (answer.GetClient() == "" || answer.GetClient() == "anonymous") {
		return fmt.Errorf("called with a token, but the gateway says the caller is %q", answer.GetClient())
	}
	if spent <= 0 {
		return fmt.Errorf("spent today is %d micro-dollars after this run's images", spent)
	}
	return nil
}

// longUpstreamError calls a gateway whose upstream refuses every call with an
// OpenAI error whose code and param are 5,000 characters each, on a new channel
// with gRPC's default limits (grpc-go's own default header list size). Relayed
// whole, those fields made a status too large for default clients, which then
// reported their own error instead of the gateway's status and x-request-id.
func longUpstreamError(ctx context.Context, target string) error {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var trailer metadata.MD
	_, err = imagegatev1.NewImagesServiceClient(conn).CreateImage(ctx, &imagegatev1.CreateImageRequest{
		Parameters: &imagegatev1.GenerationParameters{Prompt: "a red fox", Model: proto.String("gpt-image-2")},
	}, grpc.Trailer(&trailer))
	got := status.Convert(err)
	if got.Code() != codes.InvalidArgument {
		return fmt.Errorf("want the upstream's refusal as INVALID_ARGUMENT, got %v: %.200s", got.Code(), got.Message())
	}
	requestID := strings.Join(trailer.Get("x-request-id"), ",")
	if requestID == "" {
		return fmt.Errorf("no x-request-id in the trailers (%d keys)", trailer.Len())
	}
	for _, detail := range got.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok && info.GetDomain() == "api.openai.com" {
			fmt.Printf("     %v, x-request-id %s, ErrorInfo reason of %d characters\n",
				got.Code(), requestID, len(info.GetReason()))
			return nil
		}
	}
	return fmt.Errorf("no ErrorInfo from api.openai.com in %v", got.Details())
}
