package com.imagegate.transfer;

import com.imagegate.v1.FileChunk;
import com.imagegate.v1.ImagesResult;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.io.IOException;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;

/**
 * One upload call: sends the parameters message, then the files' chunks, only while gRPC says
 * the stream is ready (its flow-control window has room), resuming from the on-ready handler.
 * So at most one chunk is read ahead of what the transport accepted, whatever the file size.
 *
 * <p>When the gateway ends the call early (a file over its cap, a bad type), gRPC reports that
 * status through {@link #onError}; sending simply stops and the future fails with the gateway's
 * status. A local failure (an unreadable file) cancels the call and fails the future with it.
 */
final class Upload<Req, Resp> implements ClientResponseObserver<Req, Resp> {
  private final Req first;
  private final ChunkSource chunks;
  private final Function<FileChunk, Req> wrap;
  private final Answer<Resp> answer;
  private final CompletableFuture<ImagesResult> future = new CompletableFuture<>();
  private ClientCallStreamObserver<Req> call;
  private boolean firstSent;
  private boolean sendingDone;
  private Exception localFailure;

  Upload(Req first, ChunkSource chunks, Function<FileChunk, Req> wrap, Answer<Resp> answer) {
    this.first = first;
    this.chunks = chunks;
    this.wrap = wrap;
    this.answer = answer;
  }

  CompletableFuture<ImagesResult> future() {
    return future;
  }

  @Override
  public void beforeStart(ClientCallStreamObserver<Req> requests) {
    call = requests;
    requests.setOnReadyHandler(this::sendWhileReady);
  }

  private synchronized void sendWhileReady() {
    if (sendingDone) {
      return;
    }
    try {
      while (call.isReady()) {
        if (!firstSent) {
          call.onNext(first);
          firstSent = true;
          continue;
        }
        FileChunk chunk = chunks.next();
        if (chunk == null) {
          stopSending();
          call.onCompleted();
          return;
        }
        call.onNext(wrap.apply(chunk));
      }
    } catch (IOException | RuntimeException e) {
      localFailure = e;
      stopSending();
      call.cancel("the client could not read a file to upload", e);
    }
  }

  private void stopSending() {
    sendingDone = true;
    try {
      chunks.close();
    } catch (IOException ignored) {
      // Reading is over either way; the call's outcome is what matters.
    }
  }

  @Override
  public synchronized void onNext(Resp response) {
    try {
      answer.accept(response);
    } catch (StreamProtocolException e) {
      localFailure = e;
      stopSending();
      call.cancel("the answer broke the stream protocol", e);
    }
  }

  @Override
  public synchronized void onError(Throwable error) {
    stopSending();
    future.completeExceptionally(localFailure != null ? localFailure : error);
  }

  @Override
  public synchronized void onCompleted() {
    stopSending();
    try {
      future.complete(answer.result());
    } catch (StreamProtocolException e) {
      future.completeExceptionally(e);
    }
  }
}
