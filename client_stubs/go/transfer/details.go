package transfer

// Linked for its side effect: it registers google.rpc's error details (BadRequest,
// ErrorInfo, QuotaFailure, RetryInfo...) with the protobuf registry, so that
// status.Convert(err).Details() decodes the gateway's details into those types in
// any program that imports this package, also one that never names errdetails
// (printing the details, say). Without the registration each detail comes back
// as the error "proto: not found".
import _ "google.golang.org/genproto/googleapis/rpc/errdetails"
