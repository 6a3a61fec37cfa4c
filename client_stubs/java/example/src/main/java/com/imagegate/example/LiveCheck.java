package com.imagegate.example;

import com.google.protobuf.Any;
import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.imagegate.transfer.EditFiles;
import com.imagegate.transfer.ImageTransfers;
import com.imagegate.transfer.ResultImages;
import com.imagegate.transfer.UploadFile;
import com.imagegate.v1.CreateImageRequest;
import com.imagegate.v1.Delivery;
import com.imagegate.v1.EditParameters;
import com.imagegate.v1.GeneratedImage;
import com.imagegate.v1.GenerationParameters;
import com.imagegate.v1.GetQuotaRequest;
import com.imagegate.v1.GetQuotaResponse;
import com.imagegate.v1.ImagesResult;
import com.imagegate.v1.ImagesServiceGrpc;
import com.imagegate.v1.OutputFormat;
import com.imagegate.v1.QuotaServiceGrpc;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.MetadataUtils;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;

/**
 * Calls a running imagegate gateway the way a Java service would, through the
 * imagegate-client-stubs artifact, and checks what comes back. Target from IMAGEGATE_TARGET;
 * sends {@code authorization: Bearer $IMAGEGATE_TOKEN} when that is set. With
 * IMAGEGATE_LONG_ERROR_TARGET set to a gateway whose upstream answers every call with an error
 * whose code and param are thousands of characters long, it also checks that this default client
 * still gets the gateway's status and x-request-id. Exits 1 if any check fails.
 */
public final class LiveCheck {
  /** gRPC's default receive limit, which this channel keeps. */
  private static final int DEFAULT_RECEIVE_LIMIT = 4 * 1024 * 1024;

  /** A long prompt gives the emulator's pictures enough detail for ~5 MiB in five JPEGs. */
  private static final String DETAILED_PROMPT =
      "a detailed lighthouse on a rocky coast at dusk with waves crashing seagulls flying clouds"
          + " glowing orange and purple fishing boats returning home lanterns lit on the pier a"
          + " keeper waving from the gallery rain starting to fall over the distant hills and a"
          + " rainbow";

  private static final ByteString PNG_MAGIC =
      ByteString.copyFrom(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
  private static final ByteString JPEG_MAGIC =
      ByteString.copyFrom(new byte[] {(byte) 0xff, (byte) 0xd8, (byte) 0xff});

  @FunctionalInterface
  private interface Check {
    void run() throws Exception;
  }

  private static final Metadata.Key<String> REQUEST_ID =
      Metadata.Key.of("x-request-id", Metadata.ASCII_STRING_MARSHALLER);

  private int passed;
  private int failed;
  private final String token;
  private final ImagesServiceGrpc.ImagesServiceBlockingStub blocking;
  private final ImagesServiceGrpc.ImagesServiceStub async;
  private final QuotaServiceGrpc.QuotaServiceBlockingStub quotas;
  private ByteString firstImage;

  private LiveCheck(ManagedChannel channel, String token) {
    this.token = token;
    this.blocking = withToken(ImagesServiceGrpc.newBlockingStub(channel));
    this.async = withToken(ImagesServiceGrpc.newStub(channel));
    this.quotas = withToken(QuotaServiceGrpc.newBlockingStub(channel));
  }

  /** The stub, sending {@code authorization: Bearer <token>} when a token is set. */
  private <S extends io.grpc.stub.AbstractStub<S>> S withToken(S stub) {
    if (token == null || token.isEmpty()) {
      return stub;
    }
    Metadata headers = new Metadata();
    headers.put(
        Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
    return stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
  }

  public static void main(String[] args) throws InterruptedException {
    String target = System.getenv().getOrDefault("IMAGEGATE_TARGET", "127.0.0.1:50051");
    // No maxInboundMessageSize: the channel keeps gRPC's default 4 MiB receive limit.
    ManagedChannel channel = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
    LiveCheck checks = new LiveCheck(channel, System.getenv("IMAGEGATE_TOKEN"));
    try {
      checks.run("unary CreateImage", checks::unary);
      checks.run(
          "stored results: links fetched with a plain GET (unary and streamed)", checks::stored);
      checks.run("streamed result over 4 MiB at the default receive limit", checks::streamLarge);
      checks.run("edit upload with a mask (CreateImageEditStream)", checks::editWithMask);
      checks.run("INVALID_ARGUMENT with BadRequest field violations", checks::invalidArgument);
      checks.run("upload refused mid-way reports the gateway's status", checks::refusedUpload);
      checks.run("GetQuota: the caller's client id and spend today", checks::quota);
      String longErrorTarget = System.getenv("IMAGEGATE_LONG_ERROR_TARGET");
      if (longErrorTarget != null && !longErrorTarget.isEmpty()) {
        checks.run(
            "upstream error with 5,000-character code and param: status and x-request-id",
            () -> checks.longUpstreamError(longErrorTarget));
      }
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    System.out.printf("java: %d passed, %d failed%n", checks.passed, checks.failed);
    System.exit(checks.failed == 0 ? 0 : 1);
  }

  private void run(String name, Check check) {
    long started = System.nanoTime();
    try {
      check.run();
      passed++;
      System.out.printf("ok   %s (%.1fs)%n", name, (System.nanoTime() - started) / 1e9);
    } catch (Exception e) {
      failed++;
      Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
      System.out.printf("FAIL %s: %s%n", name, cause);
    }
  }

  private static void require(boolean condition, String message) {
    if (!condition) {
      throw new IllegalStateException(message);
    }
  }

  private void unary() {
    ImagesResult result =
        blocking
            .withDeadlineAfter(60, TimeUnit.SECONDS)
            .createImage(
                CreateImageRequest.newBuilder()
                    .setParameters(
                        GenerationParameters.newBuilder()
                            .setPrompt("a red fox in the snow")
                            .setModel("gpt-image-2")
                            .setSize("1024x1024")
                            .setOutputFormat(OutputFormat.OUTPUT_FORMAT_PNG))
                    .build())
            .getResult();
    require(result.getImagesCount() == 1, "want 1 image, got " + result.getImagesCount());
    ByteString data = result.getImages(0).getData();
    require(data.startsWith(PNG_MAGIC), "the image is not a PNG");
    System.out.printf("     1 PNG, %d bytes%n", data.size());
    firstImage = data;
  }

  /** DELIVERY_STORED: links into the gateway's result store, fetched by ResultImages. */
  private void stored() throws Exception {
    GenerationParameters parameters =
        GenerationParameters.newBuilder()
            .setPrompt("a paper boat on a pond")
            .setModel("gpt-image-2")
            .setN(2)
            .setSize("1024x1024")
            .setDelivery(Delivery.DELIVERY_STORED)
            .build();
    ImagesResult unary =
        blocking
            .withDeadlineAfter(60, TimeUnit.SECONDS)
            .createImage(CreateImageRequest.newBuilder().setParameters(parameters).build())
            .getResult();
    ImagesResult streamed =
        ImageTransfers.generateStream(
                async.withDeadlineAfter(60, TimeUnit.SECONDS), parameters, null)
            .get(90, TimeUnit.SECONDS);
    for (ImagesResult result : List.of(unary, streamed)) {
      for (GeneratedImage image : result.getImagesList()) {
        require(image.hasStored(), "an image is not stored");
      }
      List<ByteString> images = ResultImages.bytes(result);
      require(
          images.size() == 2 && images.stream().allMatch(data -> data.startsWith(PNG_MAGIC)),
          "want 2 PNGs from the links");
    }
    System.out.printf(
        "     2+2 stored PNGs, e.g. %s (%d bytes)%n",
        unary.getImages(0).getStored().getObject(), unary.getImages(0).getStored().getSizeBytes());
  }

  private void streamLarge() throws Exception {
    ImagesResult result =
        ImageTransfers.generateStream(
                async.withDeadlineAfter(120, TimeUnit.SECONDS),
                GenerationParameters.newBuilder()
                    .setPrompt(DETAILED_PROMPT)
                    .setModel("gpt-image-2")
                    .setN(5)
                    .setSize("3840x2160")
                    .setOutputFormat(OutputFormat.OUTPUT_FORMAT_JPEG)
                    .build(),
                null)
            .get(150, TimeUnit.SECONDS);
    require(result.getImagesCount() == 5, "want 5 images, got " + result.getImagesCount());
    long total = 0;
    for (GeneratedImage image : result.getImagesList()) {
      require(image.getData().startsWith(JPEG_MAGIC), "an image is not a JPEG");
      total += image.getData().size();
    }
    require(total > DEFAULT_RECEIVE_LIMIT, "the result is " + total + " bytes, not over 4 MiB");
    System.out.printf("     5 JPEGs, %.2f MiB in all%n", total / 1048576.0);
  }

  private void editWithMask() throws Exception {
    require(firstImage != null, "no input image: the unary check failed");
    BufferedImage input = ImageIO.read(new ByteArrayInputStream(firstImage.toByteArray()));
    // The mask goes up from a file and the image from memory, to use both helpers.
    Path maskPath = Files.createTempFile("imagegate-java-mask-", ".png");
    try {
      Files.write(maskPath, centreMask(input.getWidth(), input.getHeight()));
      UploadFile mask = UploadFile.fromPath(maskPath);
      ImagesResult result =
          ImageTransfers.editStream(
                  async.withDeadlineAfter(60, TimeUnit.SECONDS),
                  EditParameters.newBuilder()
                      .setPrompt("add a full moon")
                      .setModel("gpt-image-2")
                      .build(),
                  EditFiles.of(UploadFile.fromBytes("fox.png", firstImage.toByteArray()))
                      .withMask(mask),
                  null)
              .get(90, TimeUnit.SECONDS);
      require(result.getImagesCount() == 1, "want 1 image, got " + result.getImagesCount());
      BufferedImage edited =
          ImageIO.read(new ByteArrayInputStream(result.getImages(0).getData().toByteArray()));
      require(edited != null, "the edit is not a readable image");
      System.out.printf(
          "     edited %dx%d PNG (mask %d bytes)%n",
          edited.getWidth(), edited.getHeight(), mask.size());
    } finally {
      Files.deleteIfExists(maskPath);
    }
  }

  /** Opaque except for a transparent square in the middle: the area to edit. */
  private static byte[] centreMask(int width, int height) throws IOException {
    BufferedImage mask = new BufferedImage(width, height, BufferedImage.TYPE_INT_ARGB);
    for (int y = 0; y < height; y++) {
      for (int x = 0; x < width; x++) {
        boolean centre = x > width / 4 && x < 3 * width / 4 && y > height / 4 && y < 3 * height / 4;
        mask.setRGB(x, y, centre ? 0x00000000 : 0xff000000);
      }
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ImageIO.write(mask, "png", out);
    return out.toByteArray();
  }

  private void invalidArgument() throws InvalidProtocolBufferException {
    try {
      blocking
          .withDeadlineAfter(30, TimeUnit.SECONDS)
          .createImage(
              CreateImageRequest.newBuilder()
                  .setParameters(
                      GenerationParameters.newBuilder()
                          .setPrompt("a red fox")
                          .setModel("gpt-image-2")
                          .setN(0))
                  .build());
      throw new IllegalStateException("n=0 was accepted");
    } catch (StatusRuntimeException e) {
      require(
          e.getStatus().getCode() == Status.Code.INVALID_ARGUMENT,
          "want INVALID_ARGUMENT, got " + e.getStatus());
      com.google.rpc.Status status = StatusProto.fromThrowable(e);
      require(status != null, "no google.rpc.Status in the trailers");
      for (Any detail : status.getDetailsList()) {
        if (!detail.is(BadRequest.class)) {
          continue;
        }
        for (BadRequest.FieldViolation violation :
            detail.unpack(BadRequest.class).getFieldViolationsList()) {
          System.out.printf(
              "     BadRequest: %s: %s%n", violation.getField(), violation.getDescription());
          if (violation.getField().equals("parameters.n")) {
            return;
          }
        }
      }
      throw new IllegalStateException("no BadRequest field violation for parameters.n");
    }
  }

  /**
   * A dall-e-2 edit whose image is over that model's 4 MB cap: the gateway ends the call while
   * the client still has megabytes to send, and the future must fail with the gateway's status.
   */
  private void refusedUpload() throws Exception {
    byte[] oversized = new byte[8 * 1024 * 1024 + 8];
    PNG_MAGIC.copyTo(oversized, 0);
    try {
      ImageTransfers.edit(
              async.withDeadlineAfter(30, TimeUnit.SECONDS),
              EditParameters.newBuilder().setPrompt("too big").setModel("dall-e-2").build(),
              EditFiles.of(UploadFile.fromBytes("big.png", oversized)))
          .get(60, TimeUnit.SECONDS);
      throw new IllegalStateException("the oversized upload was accepted");
    } catch (ExecutionException e) {
      Status status = Status.fromThrowable(e.getCause());
      require(
          status.getCode() == Status.Code.INVALID_ARGUMENT,
          "want INVALID_ARGUMENT, got " + status);
      System.out.printf("     %s: %s%n", status.getCode(), status.getDescription());
    }
  }

  /** Who the gateway says the caller is, and what it spent today (after the images above). */
  private void quota() {
    GetQuotaResponse answer =
        quotas.withDeadlineAfter(30, TimeUnit.SECONDS).getQuota(GetQuotaRequest.getDefaultInstance());
    long spent = answer.getSpentTodayUsdMicros();
    System.out.printf(
        "     client %s: $%d.%06d spent today (UTC)%n",
        answer.getClient(), spent / 1_000_000, spent % 1_000_000);
    require(
        token == null
            || token.isEmpty()
            || !(answer.getClient().isEmpty() || answer.getClient().equals("anonymous")),
        "called with a token, but the caller is \"" + answer.getClient() + "\"");
    require(spent > 0, "spent today is " + spent + " micro-dollars after this run's images");
  }

  /**
   * A gateway whose upstream refuses every call with an OpenAI error whose code and param are
   * 5,000 characters each, called on a new channel with grpc-java's default limits (8 KiB of
   * metadata). Relayed whole, those fields made a status too large for default clients, which then
   * reported their own error instead of the gateway's status and x-request-id.
   */
  private void longUpstreamError(String target) throws Exception {
    ManagedChannel channel = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
    try {
      withToken(ImagesServiceGrpc.newBlockingStub(channel))
          .withDeadlineAfter(30, TimeUnit.SECONDS)
          .createImage(
              CreateImageRequest.newBuilder()
                  .setParameters(
                      GenerationParameters.newBuilder().setPrompt("a red fox").setModel("gpt-image-2"))
                  .build());
      throw new IllegalStateException("the upstream's refusal came back as a success");
    } catch (StatusRuntimeException e) {
      String description = String.valueOf(e.getStatus().getDescription());
      require(
          e.getStatus().getCode() == Status.Code.INVALID_ARGUMENT,
          "want the upstream's refusal as INVALID_ARGUMENT, got "
              + e.getStatus().getCode()
              + ": "
              + description.substring(0, Math.min(200, description.length())));
      String requestId = e.getTrailers() == null ? null : e.getTrailers().get(REQUEST_ID);
      require(requestId != null && !requestId.isEmpty(), "no x-request-id in the trailers");
      com.google.rpc.Status status = StatusProto.fromThrowable(e);
      require(status != null, "no google.rpc.Status in the trailers");
      for (Any detail : status.getDetailsList()) {
        if (detail.is(ErrorInfo.class)
            && detail.unpack(ErrorInfo.class).getDomain().equals("api.openai.com")) {
          System.out.printf(
              "     INVALID_ARGUMENT, x-request-id %s, ErrorInfo reason of %d characters%n",
              requestId, detail.unpack(ErrorInfo.class).getReason().length());
          return;
        }
      }
      throw new IllegalStateException("no ErrorInfo from api.openai.com in the status details");
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
