package com.imagegate.transfer;

import com.imagegate.v1.EditParameters;
import com.imagegate.v1.FileRole;
import java.util.ArrayList;
import java.util.List;

/** The uploaded files of an edit: one or more images, and optionally a mask or a markup. */
public final class EditFiles {
  private final List<UploadFile> images;
  private final UploadFile mask;
  private final UploadFile markup;

  private EditFiles(List<UploadFile> images, UploadFile mask, UploadFile markup) {
    if (images.isEmpty()) {
      throw new IllegalArgumentException("an edit needs at least one image");
    }
    this.images = List.copyOf(images);
    this.mask = mask;
    this.markup = markup;
  }

  public static EditFiles of(List<UploadFile> images) {
    return new EditFiles(images, null, null);
  }

  public static EditFiles of(UploadFile... images) {
    return of(List.of(images));
  }

  /** The mask: a PNG with alpha, the same size as the first image. */
  public EditFiles withMask(UploadFile mask) {
    return new EditFiles(images, mask, markup);
  }

  public EditFiles withMarkup(UploadFile markup) {
    return new EditFiles(images, mask, markup);
  }

  /** {@code params} with every file declared (replacing any images, mask, markup it had). */
  EditParameters declare(EditParameters params) {
    EditParameters.Builder builder = params.toBuilder().clearImages().clearMask().clearMarkup();
    images.forEach(image -> builder.addImages(image.info()));
    if (mask != null) {
      builder.setMask(mask.info());
    }
    if (markup != null) {
      builder.setMarkup(markup.info());
    }
    return builder.build();
  }

  /** The files in upload order, each with the FileChunk address of its bytes. */
  List<ChunkSource.Part> parts() {
    List<ChunkSource.Part> parts = new ArrayList<>();
    for (int i = 0; i < images.size(); i++) {
      parts.add(new ChunkSource.Part(images.get(i), FileRole.FILE_ROLE_IMAGE, i));
    }
    if (mask != null) {
      parts.add(new ChunkSource.Part(mask, FileRole.FILE_ROLE_MASK, 0));
    }
    if (markup != null) {
      parts.add(new ChunkSource.Part(markup, FileRole.FILE_ROLE_MARKUP, 0));
    }
    return parts;
  }
}
