package com.imagegate.transfer;

import com.google.protobuf.ByteString;
import com.imagegate.v1.FileChunk;
import com.imagegate.v1.FileRole;
import java.io.IOException;
import java.io.InputStream;
import java.util.Iterator;
import java.util.List;

/**
 * The FileChunks of an upload, read lazily: one 64 KiB chunk is read only when the transport
 * is ready to take it, so a large file is never held in memory.
 */
final class ChunkSource implements AutoCloseable {
  /** The recommended chunk size (the gateway accepts up to 1 MiB). */
  static final int CHUNK_BYTES = 64 * 1024;

  record Part(UploadFile file, FileRole role, int imageIndex) {}

  private final Iterator<Part> parts;
  private Part current;
  private InputStream in;
  private long sent;

  ChunkSource(List<Part> parts) {
    this.parts = parts.iterator();
  }

  /** The next chunk, or null when every file has been read. */
  FileChunk next() throws IOException {
    while (true) {
      if (in == null) {
        if (!parts.hasNext()) {
          return null;
        }
        current = parts.next();
        in = current.file().open();
        sent = 0;
      }
      byte[] data = in.readNBytes(CHUNK_BYTES);
      if (data.length > 0) {
        sent += data.length;
        return FileChunk.newBuilder()
            .setRole(current.role())
            .setImageIndex(current.imageIndex())
            .setData(ByteString.copyFrom(data))
            .build();
      }
      close();
      if (sent != current.file().size()) {
        throw new IOException(
            current.file().filename()
                + " changed during the upload ("
                + current.file().size()
                + " bytes declared, "
                + sent
                + " read)");
      }
    }
  }

  @Override
  public void close() throws IOException {
    if (in != null) {
      InputStream open = in;
      in = null;
      open.close();
    }
  }
}
