// Package transfer is the hand-written half of the imagegate Go client: it sends
// edit and variation uploads the way the contract wants them (the parameters
// message first, then each file's bytes in 64 KiB chunks, at the pace the
// transport's flow control allows) and turns a streamed answer (ImageChunk
// slices, then one ImagesResult) back into whole images. ImageBytes gives every
// image of a result as bytes whatever its delivery: inline, or stored in the
// gateway's result store (DELIVERY_STORED), whose link it fetches with a plain,
// bounded HTTP GET.
//
// The generated messages and stubs live in the sibling package
// github.com/imagegate/imagegate/client_stubs/go/gen/imagegate/v1; nothing here is
// generated. Every function returns the gateway's gRPC status unchanged on
// failure, so status.FromError and its Details (google.rpc.BadRequest,
// ErrorInfo, ...) work as usual; importing this package registers those
// google.rpc types, so Details decodes them without an import of errdetails.
package transfer
