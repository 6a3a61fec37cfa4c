/**
 * @imagegate/client-stubs: imagegate.v1 for TypeScript on Node.
 *
 * - generated (./gen, protobuf-es): the imagegate.v1 messages and service
 *   descriptors (ImagesService, QuotaService, StoredImagesService), and google.rpc
 *   Status and error details;
 * - hand-written: typed @grpc/grpc-js clients (createImagesClient,
 *   createQuotaClient, createStoredImagesClient), upload and
 *   streamed-result helpers (edit, editStream, variation, variationStream,
 *   generateStream, collect), stored results fetched by their links (imageBytes),
 *   and error-detail decoding (errorDetail).
 */
export * from "./gen/imagegate/v1/images_service_pb.js";
export * from "./gen/imagegate/v1/params_pb.js";
export * from "./gen/imagegate/v1/results_pb.js";
export * from "./gen/imagegate/v1/quota_pb.js";
export * from "./gen/imagegate/v1/stored_pb.js";
export * from "./gen/google/rpc/status_pb.js";
export * from "./gen/google/rpc/error_details_pb.js";
export * from "./client.js";
export * from "./assemble.js";
export * from "./transfer.js";
export * from "./errors.js";
export * from "./fetch.js";
