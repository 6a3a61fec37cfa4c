/**
 * The hand-written half of the imagegate Java client: uploads sent the way the contract
 * wants them (the parameters message first, then each file's bytes in 64 KiB chunks at the
 * pace gRPC's flow control allows) and streamed answers (ImageChunk slices, then one
 * ImagesResult) turned back into whole images; {@link com.imagegate.transfer.ResultImages}
 * gives every image of a result as bytes whatever its delivery, fetching the links of stored
 * results (DELIVERY_STORED) with a plain, bounded HTTP GET.
 *
 * <p>The generated messages and stubs are in {@code com.imagegate.v1}; nothing here is
 * generated. Failures complete the returned futures with the gateway's {@code
 * StatusRuntimeException} unchanged, so {@code io.grpc.protobuf.StatusProto.fromThrowable}
 * and {@code Any.unpack(BadRequest.class)} work as usual.
 */
package com.imagegate.transfer;
