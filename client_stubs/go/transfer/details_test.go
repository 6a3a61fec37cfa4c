package transfer_test

import (
	"testing"

	_ "github.com/imagegate/imagegate/client_stubs/go/transfer"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// A program that imports this module's packages, but not errdetails, still gets
// the gateway's google.rpc details decoded by status.Details(). This file imports
// no errdetails (the detail is encoded by hand) so that only the module's own
// imports can have registered the type.
func TestDetailsDecodeWithoutImportingErrdetails(t *testing.T) {
	// google.rpc.BadRequest{field_violations: [{field: "parameters.n", description: "too small"}]}
	var violation []byte
	violation = protowire.AppendTag(violation, 1, protowire.BytesType)
	violation = protowire.AppendString(violation, "parameters.n")
	violation = protowire.AppendTag(violation, 2, protowire.BytesType)
	violation = protowire.AppendString(violation, "too small")
	var badRequest []byte
	badRequest = protowire.AppendTag(badRequest, 1, protowire.BytesType)
	badRequest = protowire.AppendBytes(badRequest, violation)

	st := status.FromProto(&spb.Status{
		Code:    int32(codes.InvalidArgument),
		Message: "invalid request",
		Details: []*anypb.Any{{TypeUrl: "type.googleapis.com/google.rpc.BadRequest", Value: badRequest}},
	})
	details := st.Details()
	if len(details) != 1 {
		t.Fatalf("want 1 detail, got %v", details)
	}
	if err, failed := details[0].(error); failed {
		t.Fatalf("google.rpc.BadRequest did not decode: %v", err)
	}
	message, ok := details[0].(proto.Message)
	if !ok || message.ProtoReflect().Descriptor().FullName() != "google.rpc.BadRequest" {
		t.Fatalf("want a google.rpc.BadRequest, got %T", details[0])
	}
	field := message.ProtoReflect().Descriptor().Fields().ByName("field_violations")
	first := message.ProtoReflect().Get(field).List().Get(0).Message()
	if got := first.Get(first.Descriptor().Fields().ByName("field")).String(); got != "parameters.n" {
		t.Fatalf("want field parameters.n, got %q", got)
	}
}
