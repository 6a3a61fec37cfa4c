package com.imagegate.transfer;

import com.imagegate.v1.CreateImageEditRequest;
import com.imagegate.v1.CreateImageEditResponse;
import com.imagegate.v1.CreateImageEditStreamRequest;
import com.imagegate.v1.CreateImageEditStreamResponse;
import com.imagegate.v1.CreateImageStreamRequest;
import com.imagegate.v1.CreateImageStreamResponse;
import com.imagegate.v1.CreateImageVariationRequest;
import com.imagegate.v1.CreateImageVariationResponse;
import com.imagegate.v1.CreateImageVariationStreamRequest;
import com.imagegate.v1.CreateImageVariationStreamResponse;
import com.imagegate.v1.EditParameters;
import com.imagegate.v1.FileRole;
import com.imagegate.v1.GenerationParameters;
import com.imagegate.v1.ImagesResult;
import com.imagegate.v1.ImagesServiceGrpc.ImagesServiceStub;
import com.imagegate.v1.VariationParameters;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;

/**
 * Uploads and streamed results on the async stub. Set deadlines, credentials and metadata on
 * the stub as usual ({@code stub.withDeadlineAfter(...)}, {@code withCallCredentials}, {@code
 * withInterceptors}); each method returns a future of the ImagesResult with every image's bytes
 * in place, or failed with the gateway's {@code StatusRuntimeException}.
 */
public final class ImageTransfers {
  private ImageTransfers() {}

  /**
   * CreateImageEdit: declares {@code files} in {@code params}, uploads them, and returns the
   * whole result (which must fit the channel's receive limit, 4 MiB by default; see {@link
   * #editStream}).
   */
  public static CompletableFuture<ImagesResult> edit(
      ImagesServiceStub stub, EditParameters params, EditFiles files) {
    Upload<CreateImageEditRequest, CreateImageEditResponse> upload =
        new Upload<>(
            CreateImageEditRequest.newBuilder().setParameters(files.declare(params)).build(),
            new ChunkSource(files.parts()),
            chunk -> CreateImageEditRequest.newBuilder().setChunk(chunk).build(),
            Answer.unary(CreateImageEditResponse::getResult));
    stub.createImageEdit(upload);
    return upload.future();
  }

  /**
   * CreateImageEditStream: like {@link #edit}, but the images arrive in slices, so any result
   * fits gRPC's default receive limit. {@code onPartial} (may be null) sees each partial image.
   */
  public static CompletableFuture<ImagesResult> editStream(
      ImagesServiceStub stub,
      EditParameters params,
      EditFiles files,
      Consumer<AssembledImage> onPartial) {
    Upload<CreateImageEditStreamRequest, CreateImageEditStreamResponse> upload =
        new Upload<>(
            CreateImageEditStreamRequest.newBuilder().setParameters(files.declare(params)).build(),
            new ChunkSource(files.parts()),
            chunk -> CreateImageEditStreamRequest.newBuilder().setChunk(chunk).build(),
            Answer.streamed(
                r -> r.hasImageChunk() ? r.getImageChunk() : null,
                r -> r.hasResult() ? r.getResult() : null,
                onPartial));
    stub.createImageEditStream(upload);
    return upload.future();
  }

  /** CreateImageVariation with {@code image} as the input. */
  public static CompletableFuture<ImagesResult> variation(
      ImagesServiceStub stub, VariationParameters params, UploadFile image) {
    Upload<CreateImageVariationRequest, CreateImageVariationResponse> upload =
        new Upload<>(
            CreateImageVariationRequest.newBuilder()
                .setParameters(params.toBuilder().setImage(image.info()))
                .build(),
            new ChunkSource(List.of(new ChunkSource.Part(image, FileRole.FILE_ROLE_IMAGE, 0))),
            chunk -> CreateImageVariationRequest.newBuilder().setChunk(chunk).build(),
            Answer.unary(CreateImageVariationResponse::getResult));
    stub.createImageVariation(upload);
    return upload.future();
  }

  /** CreateImageVariationStream: like {@link #variation}, the images delivered in slices. */
  public static CompletableFuture<ImagesResult> variationStream(
      ImagesServiceStub stub, VariationParameters params, UploadFile image) {
    Upload<CreateImageVariationStreamRequest, CreateImageVariationStreamResponse> upload =
        new Upload<>(
            CreateImageVariationStreamRequest.newBuilder()
                .setParameters(params.toBuilder().setImage(image.info()))
                .build(),
            new ChunkSource(List.of(new ChunkSource.Part(image, FileRole.FILE_ROLE_IMAGE, 0))),
            chunk -> CreateImageVariationStreamRequest.newBuilder().setChunk(chunk).build(),
            Answer.streamed(
                r -> r.hasImageChunk() ? r.getImageChunk() : null,
                r -> r.hasResult() ? r.getResult() : null,
                null));
    stub.createImageVariationStream(upload);
    return upload.future();
  }

  /** CreateImageStream, collected: partial images to {@code onPartial} (may be null). */
  public static CompletableFuture<ImagesResult> generateStream(
      ImagesServiceStub stub, GenerationParameters params, Consumer<AssembledImage> onPartial) {
    Answer<CreateImageStreamResponse> answer =
        Answer.streamed(
            r -> r.hasImageChunk() ? r.getImageChunk() : null,
            r -> r.hasResult() ? r.getResult() : null,
            onPartial);
    CompletableFuture<ImagesResult> future = new CompletableFuture<>();
    stub.createImageStream(
        CreateImageStreamRequest.newBuilder().setParameters(params).build(),
        new StreamObserver<>() {
          private RuntimeException broken;

          @Override
          public void onNext(CreateImageStreamResponse response) {
            if (broken != null) {
              return;
            }
            try {
              answer.accept(response);
            } catch (StreamProtocolException e) {
              broken = e; // reported when the stream ends; the rest is ignored
            }
          }

          @Override
          public void onError(Throwable error) {
            future.completeExceptionally(broken != null ? broken : error);
          }

          @Override
          public void onCompleted() {
            try {
              if (broken != null) {
                throw broken;
              }
              future.complete(answer.result());
            } catch (StreamProtocolException e) {
              future.completeExceptionally(e);
            }
          }
        });
    return future;
  }
}
