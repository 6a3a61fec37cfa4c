/**
 * A typed @grpc/grpc-js client built from a protobuf-es service descriptor.
 *
 * Why grpc-js and not Connect's gRPC transport: with @connectrpc/connect-node 2.2.0
 * a client-streamed upload that the server rejects early leaves its HTTP/2 stream
 * open (6 of 10 such streams in a test here, and the process never exited), while
 * grpc-js ends the call with the server's status. Uploads being half of this API,
 * grpc-js it is; the adapter below is all that protobuf-es needs to drive it.
 *
 * grpc-js keeps gRPC's default 4 MiB receive limit unless the channel option
 * `grpc.max_receive_message_length` raises it. The streaming RPCs deliver images in
 * slices of at most 1 MiB, so they work at that default whatever the result size.
 */
import * as grpc from "@grpc/grpc-js";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { ImagesService } from "./gen/imagegate/v1/images_service_pb.js";
import { QuotaService } from "./gen/imagegate/v1/quota_pb.js";
import { StoredImagesService } from "./gen/imagegate/v1/stored_pb.js";

/** grpc-js call options (deadline, credentials, interceptors...) plus request metadata. */
export interface CallOptions extends grpc.CallOptions {
  metadata?: grpc.Metadata;
}

export type UnaryMethod<I extends DescMessage, O extends DescMessage> = (
  request: MessageInitShape<I>,
  options?: CallOptions,
) => Promise<MessageShape<O>>;

export type ServerStreamingMethod<I extends DescMessage, O extends DescMessage> = (
  request: MessageInitShape<I>,
  options?: CallOptions,
) => grpc.ClientReadableStream<MessageShape<O>>;

/** A client-streaming call: write requests to `call`, then await `response`. */
export interface ClientStreamingCall<I, O> {
  call: grpc.ClientWritableStream<I>;
  response: Promise<O>;
}

export type ClientStreamingMethod<I extends DescMessage, O extends DescMessage> = (
  options?: CallOptions,
) => ClientStreamingCall<MessageInitShape<I>, MessageShape<O>>;

export type BidiStreamingMethod<I extends DescMessage, O extends DescMessage> = (
  options?: CallOptions,
) => grpc.ClientDuplexStream<MessageInitShape<I>, MessageShape<O>>;

type MethodOf<M> = M extends { methodKind: "unary"; input: infer I extends DescMessage; output: infer O extends DescMessage }
  ? UnaryMethod<I, O>
  : M extends { methodKind: "server_streaming"; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? ServerStreamingMethod<I, O>
    : M extends { methodKind: "client_streaming"; input: infer I extends DescMessage; output: infer O extends DescMessage }
      ? ClientStreamingMethod<I, O>
      : M extends { methodKind: "bidi_streaming"; input: infer I extends DescMessage; output: infer O extends DescMessage }
        ? BidiStreamingMethod<I, O>
        : never;

/** One method per rpc, named by its lowerCamelCase local name, plus the channel. */
export type GrpcClient<S extends DescService> = {
  readonly [K in keyof S["method"]]: MethodOf<S["method"][K]>;
} & {
  /** The underlying grpc-js client (channel state, waitForReady...). */
  readonly grpcClient: grpc.Client;
  /** Closes the channel. */
  close(): void;
};

/** The imagegate.v1.ImagesService client. */
export type ImagesClient = GrpcClient<typeof ImagesService>;

/** The imagegate.v1.QuotaService client: `getQuota({})`, the caller's limits and spend. */
export type QuotaClient = GrpcClient<typeof QuotaService>;

/**
 * The imagegate.v1.StoredImagesService client: `getStoredImage({ object })`, a fresh
 * link to one of the caller's stored images.
 */
export type StoredImagesClient = GrpcClient<typeof StoredImagesService>;

/**
 * Creates a client of `service` on a new grpc-js channel. `target` is `host:port`;
 * `credentials` is for example `credentials.createInsecure()` or
 * `credentials.createSsl(ca)`; `options` are grpc-js channel options.
 */
export function createGrpcClient<S extends DescService>(
  service: S,
  target: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
): GrpcClient<S> {
  const client = new grpc.Client(target, credentials, options);
  const methods: Record<string, unknown> = {
    grpcClient: client,
    close: () => client.close(),
  };
  for (const method of service.methods) {
    const path = `/${service.typeName}/${method.name}`;
    const serialize = (message: MessageInitShape<DescMessage>): Buffer =>
      Buffer.from(toBinary(method.input, create(method.input, message)));
    const deserialize = (bytes: Buffer): MessageShape<DescMessage> =>
      fromBinary(method.output, bytes);
    const split = (options: CallOptions = {}): [grpc.Metadata, grpc.CallOptions] => {
      const { metadata = new grpc.Metadata(), ...callOptions } = options;
      return [metadata, callOptions];
    };
    switch (method.methodKind) {
      case "unary":
        methods[method.localName] = (request: MessageInitShape<DescMessage>, options?: CallOptions) =>
          new Promise((resolve, reject) => {
            const [metadata, callOptions] = split(options);
            client.makeUnaryRequest(path, serialize, deserialize, request, metadata, callOptions, (error, value) =>
              error ? reject(error) : resolve(value),
            );
          });
        break;
      case "server_streaming":
        methods[method.localName] = (request: MessageInitShape<DescMessage>, options?: CallOptions) => {
          const [metadata, callOptions] = split(options);
          return client.makeServerStreamRequest(path, serialize, deserialize, request, metadata, callOptions);
        };
        break;
      case "client_streaming":
        methods[method.localName] = (options?: CallOptions) => {
          const [metadata, callOptions] = split(options);
          let call!: grpc.ClientWritableStream<MessageInitShape<DescMessage>>;
          const response = new Promise((resolve, reject) => {
            call = client.makeClientStreamRequest(path, serialize, deserialize, metadata, callOptions, (error, value) =>
              error ? reject(error) : resolve(value),
            );
          });
          return { call, response };
        };
        break;
      case "bidi_streaming":
        methods[method.localName] = (options?: CallOptions) => {
          const [metadata, callOptions] = split(options);
          return client.makeBidiStreamRequest(path, serialize, deserialize, metadata, callOptions);
        };
        break;
    }
  }
  return methods as GrpcClient<S>;
}

/** A client of imagegate.v1.ImagesService (see {@link createGrpcClient}). */
export function createImagesClient(
  target: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
): ImagesClient {
  return createGrpcClient(ImagesService, target, credentials, options);
}

/**
 * A client of imagegate.v1.QuotaService (see {@link createGrpcClient}). It may share
 * a channel with the images client: pass `{ channelOverride: images.grpcClient.getChannel() }`
 * as `options`, or open its own as here by default.
 */
export function createQuotaClient(
  target: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
): QuotaClient {
  return createGrpcClient(QuotaService, target, credentials, options);
}

/** A client of imagegate.v1.StoredImagesService (see {@link createQuotaClient} for sharing a channel). */
export function createStoredImagesClient(
  target: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
): StoredImagesClient {
  return createGrpcClient(StoredImagesService, target, credentials, options);
}

/** `authorization: Bearer <token>` metadata, for gateways that require a client token. */
export function bearerMetadata(token: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}
