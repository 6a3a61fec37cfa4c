/**
 * google.rpc error details from a grpc-js ServiceError.
 *
 * The gateway puts a google.rpc.Status (code, message, details as Any) in the
 * `grpc-status-details-bin` trailer; grpc-js hands it over as raw metadata. These
 * helpers decode it with the google.rpc types this package ships, e.g.
 * `errorDetail(error, BadRequestSchema)?.fieldViolations`.
 */
import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { StatusSchema, type Status } from "./gen/google/rpc/status_pb.js";

const DETAILS_KEY = "grpc-status-details-bin";

/** True for the errors grpc-js rejects calls with (they carry code and metadata). */
export function isServiceError(error: unknown): error is grpc.ServiceError {
  return error instanceof Error && typeof (error as Partial<grpc.ServiceError>).code === "number" && "metadata" in error;
}

/** The google.rpc.Status the server sent with its error, if any. */
export function richStatus(error: unknown): Status | undefined {
  if (!isServiceError(error)) return undefined;
  const [value] = error.metadata.get(DETAILS_KEY);
  if (value === undefined || typeof value === "string") return undefined;
  return fromBinary(StatusSchema, value);
}

/** The first detail of type `schema` (BadRequestSchema, ErrorInfoSchema, RetryInfoSchema...). */
export function errorDetail<Desc extends DescMessage>(error: unknown, schema: Desc): MessageShape<Desc> | undefined {
  for (const detail of richStatus(error)?.details ?? []) {
    const unpacked = anyUnpack(detail, schema);
    if (unpacked !== undefined) return unpacked;
  }
  return undefined;
}
