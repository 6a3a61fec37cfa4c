package com.imagegate.transfer;

import com.imagegate.v1.FileInfo;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;

/**
 * One file to upload: what the parameters message declares about it (name, type from its
 * magic bytes, size) and a way to read its bytes when the upload reaches it. Declaring the
 * size lets the gateway refuse an oversized file before any byte is sent.
 */
public final class UploadFile {
  private static final int MAX_FILENAME_BYTES = 255;

  /** Opens the file's bytes; called once, when the upload reaches this file. */
  @FunctionalInterface
  interface Opener {
    InputStream open() throws IOException;
  }

  private final String filename;
  private final String contentType;
  private final long size;
  private final Opener opener;

  private UploadFile(String filename, String contentType, long size, Opener opener) {
    this.filename = filename;
    this.contentType = contentType;
    this.size = size;
    this.opener = opener;
  }

  /** Declares the file at {@code path}; only its first bytes are read now. */
  public static UploadFile fromPath(Path path) throws IOException {
    long size = Files.size(path);
    if (size == 0) {
      throw new IOException("cannot upload " + path + ": the file is empty");
    }
    byte[] head;
    try (InputStream in = Files.newInputStream(path)) {
      head = in.readNBytes(16);
    }
    String name = path.getFileName() == null ? "" : path.getFileName().toString();
    if (name.getBytes(StandardCharsets.UTF_8).length > MAX_FILENAME_BYTES) {
      name = ""; // the gateway names it after its type
    }
    return new UploadFile(name, sniffContentType(head), size, () -> Files.newInputStream(path));
  }

  /** Declares an in-memory file; {@code filename} may be empty. */
  public static UploadFile fromBytes(String filename, byte[] data) {
    Objects.requireNonNull(data, "data");
    byte[] copy = data.clone();
    return new UploadFile(
        Objects.requireNonNullElse(filename, ""),
        sniffContentType(copy),
        copy.length,
        () -> new ByteArrayInputStream(copy));
  }

  public String filename() {
    return filename;
  }

  /** image/png, image/jpeg or image/webp, or "" (the gateway then decides, and rejects). */
  public String contentType() {
    return contentType;
  }

  public long size() {
    return size;
  }

  FileInfo info() {
    return FileInfo.newBuilder()
        .setFilename(filename)
        .setContentType(contentType)
        .setSizeBytes(size)
        .build();
  }

  InputStream open() throws IOException {
    return opener.open();
  }

  /** Names the three types the gateway accepts, from magic bytes. */
  static String sniffContentType(byte[] head) {
    byte[] png = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (head.length >= 8 && Arrays.equals(Arrays.copyOf(head, 8), png)) {
      return "image/png";
    }
    if (head.length >= 3
        && (head[0] & 0xff) == 0xff
        && (head[1] & 0xff) == 0xd8
        && (head[2] & 0xff) == 0xff) {
      return "image/jpeg";
    }
    if (head.length >= 12
        && new String(head, 0, 4, StandardCharsets.ISO_8859_1).equals("RIFF")
        && new String(head, 8, 4, StandardCharsets.ISO_8859_1).equals("WEBP")) {
      return "image/webp";
    }
    return "";
  }
}
