/**
 * Uploads (edits, variations) the way the contract wants them: the parameters
 * message first, then each declared file's bytes in 64 KiB chunks, written only as
 * fast as grpc-js accepts them (`write()` returning false means its buffer is full:
 * wait for "drain"). When the gateway ends the call early (a file over its cap, a
 * bad type), writing stops and the call rejects with the gateway's status.
 */
import { open as openFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  EditParametersSchema,
  FileChunkSchema,
  GenerationParametersSchema,
  FileInfoSchema,
  FileRole,
  VariationParametersSchema,
  type FileChunk,
  type FileInfo,
} from "./gen/imagegate/v1/params_pb.js";
import type { ImagesResult } from "./gen/imagegate/v1/results_pb.js";
import { collect, type AssembledImage } from "./assemble.js";
import type { CallOptions, ImagesClient } from "./client.js";

/** The recommended chunk size (the gateway accepts up to 1 MiB). */
export const CHUNK_BYTES = 64 * 1024;
const MAX_FILENAME_BYTES = 255;

/** One file to upload: its declaration and a way to read its bytes when needed. */
export interface UploadFile {
  /** Sent to OpenAI; "" lets the gateway name it after its type. */
  filename: string;
  /** image/png, image/jpeg or image/webp from the magic bytes, or "" (the gateway decides). */
  contentType: string;
  /** Declared so an oversized file is refused before any byte is sent. */
  size: number;
  /** The bytes, in pieces of at most CHUNK_BYTES. */
  chunks(): AsyncIterable<Uint8Array>;
}

/** The uploaded files of an edit: at least one image, optionally a mask or markup. */
export interface EditFiles {
  images: UploadFile[];
  /** A PNG with alpha, the same size as the first image. */
  mask?: UploadFile;
  markup?: UploadFile;
}

/** Names the three types the gateway accepts, from magic bytes. */
export function sniffContentType(head: Uint8Array): string {
  const ascii = (from: number, to: number) => String.fromCharCode(...head.subarray(from, to));
  if (head.length >= 8 && ascii(1, 4) === "PNG" && head[0] === 0x89 && ascii(4, 8) === "\r\n\x1a\n") {
    return "image/png";
  }
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) {
    return "image/jpeg";
  }
  if (head.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") {
    return "image/webp";
  }
  return "";
}

/** Declares an in-memory file. */
export function fileFromBytes(filename: string, data: Uint8Array): UploadFile {
  return {
    filename,
    contentType: sniffContentType(data),
    size: data.length,
    async *chunks() {
      for (let at = 0; at < data.length; at += CHUNK_BYTES) {
        yield data.subarray(at, at + CHUNK_BYTES);
      }
    },
  };
}

/** Declares the file at `path`; only its first bytes are read now. */
export async function fileFromPath(path: string): Promise<UploadFile> {
  const { size } = await stat(path);
  if (size === 0) {
    throw new Error(`cannot upload ${path}: the file is empty`);
  }
  const handle = await openFile(path, "r");
  const head = new Uint8Array(16);
  try {
    await handle.read(head, 0, head.length, 0);
  } finally {
    await handle.close();
  }
  const name = basename(path);
  return {
    filename: Buffer.byteLength(name) <= MAX_FILENAME_BYTES ? name : "",
    contentType: sniffContentType(head),
    size,
    async *chunks() {
      const file = await openFile(path, "r");
      try {
        let sent = 0;
        for (;;) {
          const buffer = new Uint8Array(CHUNK_BYTES); // fresh: grpc-js may still hold the last one
          const { bytesRead } = await file.read(buffer, 0, CHUNK_BYTES, null);
          if (bytesRead === 0) break;
          sent += bytesRead;
          yield buffer.subarray(0, bytesRead);
        }
        if (sent !== size) {
          throw new Error(`${path} changed during the upload (${size} bytes declared, ${sent} read)`);
        }
      } finally {
        await file.close();
      }
    },
  };
}

function info(file: UploadFile): FileInfo {
  return create(FileInfoSchema, {
    filename: file.filename,
    contentType: file.contentType,
    sizeBytes: BigInt(file.size),
  });
}

interface Part {
  file: UploadFile;
  role: FileRole;
  imageIndex: number;
}

function editParts(files: EditFiles): Part[] {
  if (files.images.length === 0) {
    throw new Error("an edit needs at least one image");
  }
  const parts: Part[] = files.images.map((file, imageIndex) => ({ file, role: FileRole.IMAGE, imageIndex }));
  if (files.mask) parts.push({ file: files.mask, role: FileRole.MASK, imageIndex: 0 });
  if (files.markup) parts.push({ file: files.markup, role: FileRole.MARKUP, imageIndex: 0 });
  return parts;
}

async function* fileChunks(parts: Part[]): AsyncGenerator<FileChunk> {
  for (const { file, role, imageIndex } of parts) {
    for await (const data of file.chunks()) {
      yield create(FileChunkSchema, { role, imageIndex, data });
    }
  }
}

/**
 * Writes `first`, then one message per chunk, waiting for "drain" whenever grpc-js
 * says its buffer is full, and ends the request stream. Stops as soon as `ended`
 * settles (the call is over, typically the gateway refused the upload): a write
 * after that would only wait for a drain that never comes.
 */
async function writeUpload<T>(
  call: grpc.ClientWritableStream<T> | grpc.ClientDuplexStream<T, unknown>,
  first: T,
  parts: Part[],
  wrap: (chunk: FileChunk) => T,
  ended: Promise<unknown>,
): Promise<void> {
  let over = false;
  const stop = ended.then(
    () => (over = true),
    () => (over = true),
  );
  const writable = (message: T): Promise<unknown> | undefined =>
    call.write(message) ? undefined : Promise.race([new Promise((resolve) => call.once("drain", resolve)), stop]);
  const waitFirst = writable(first);
  if (waitFirst) await waitFirst;
  for await (const chunk of fileChunks(parts)) {
    if (over) return;
    const wait = writable(wrap(chunk));
    if (wait) await wait;
  }
  if (!over) call.end();
}

/** Settles when a duplex call's status arrives (either way). */
function statusOf(call: NodeJS.EventEmitter): Promise<grpc.StatusObject> {
  return new Promise((resolve) => call.once("status", resolve));
}

/** Runs an upload; a local failure (unreadable file) cancels the call and rejects with it. */
async function upload<R>(
  call: { cancel(): void },
  write: () => Promise<void>,
  answer: Promise<R>,
): Promise<R> {
  // The gateway may answer (typically refuse) while a chunk is still being read
  // from disk: mark the answer handled now so Node does not report an unhandled
  // rejection meanwhile; it still reaches the caller through the return below.
  answer.catch(() => undefined);
  try {
    await write();
  } catch (error) {
    call.cancel(); // the cancellation's own CANCELLED is not the story: report the local error
    throw error;
  }
  return answer;
}

type EditInit = MessageInitShape<typeof EditParametersSchema>;
type VariationInit = MessageInitShape<typeof VariationParametersSchema>;

/** Options of the streaming helpers: call options plus a partial-image callback. */
export interface StreamOptions extends CallOptions {
  onPartial?: (image: AssembledImage) => void;
}

function declareEdit(params: EditInit, files: EditFiles) {
  return create(EditParametersSchema, {
    ...params,
    images: files.images.map(info),
    mask: files.mask ? info(files.mask) : undefined,
    markup: files.markup ? info(files.markup) : undefined,
  });
}

/**
 * CreateImageEdit: declares `files` in `params`, uploads them and returns the whole
 * result (which must fit the client's receive limit, 4 MiB by default; see editStream).
 */
export async function edit(
  client: ImagesClient,
  params: EditInit,
  files: EditFiles,
  options?: CallOptions,
): Promise<ImagesResult> {
  const parts = editParts(files);
  const { call, response } = client.createImageEdit(options);
  const answer = response.then((r) => r.result ?? Promise.reject(new Error("the response has no result")));
  const first = { payload: { case: "parameters" as const, value: declareEdit(params, files) } };
  return upload(
    call,
    () => writeUpload(call, first, parts, (chunk) => ({ payload: { case: "chunk" as const, value: chunk } }), response),
    answer,
  );
}

/** CreateImageEditStream: like edit, with the images delivered in slices (any size fits). */
export async function editStream(
  client: ImagesClient,
  params: EditInit,
  files: EditFiles,
  options: StreamOptions = {},
): Promise<ImagesResult> {
  const parts = editParts(files);
  const { onPartial, ...callOptions } = options;
  const call = client.createImageEditStream(callOptions);
  const ended = statusOf(call);
  const answer = collect(call, onPartial);
  const first = { payload: { case: "parameters" as const, value: declareEdit(params, files) } };
  return upload(
    call,
    () => writeUpload(call, first, parts, (chunk) => ({ payload: { case: "chunk" as const, value: chunk } }), ended),
    answer,
  );
}

/** CreateImageVariation with `image` as the input. */
export async function variation(
  client: ImagesClient,
  params: VariationInit,
  image: UploadFile,
  options?: CallOptions,
): Promise<ImagesResult> {
  const parts = [{ file: image, role: FileRole.IMAGE, imageIndex: 0 }];
  const { call, response } = client.createImageVariation(options);
  const answer = response.then((r) => r.result ?? Promise.reject(new Error("the response has no result")));
  const value = create(VariationParametersSchema, { ...params, image: info(image) });
  return upload(
    call,
    () =>
      writeUpload(
        call,
        { payload: { case: "parameters" as const, value } },
        parts,
        (chunk) => ({ payload: { case: "chunk" as const, value: chunk } }),
        response,
      ),
    answer,
  );
}

/** CreateImageVariationStream: like variation, the images delivered in slices. */
export async function variationStream(
  client: ImagesClient,
  params: VariationInit,
  image: UploadFile,
  options: StreamOptions = {},
): Promise<ImagesResult> {
  const parts = [{ file: image, role: FileRole.IMAGE, imageIndex: 0 }];
  const { onPartial, ...callOptions } = options;
  const call = client.createImageVariationStream(callOptions);
  const ended = statusOf(call);
  const answer = collect(call, onPartial);
  const value = create(VariationParametersSchema, { ...params, image: info(image) });
  return upload(
    call,
    () =>
      writeUpload(
        call,
        { payload: { case: "parameters" as const, value } },
        parts,
        (chunk) => ({ payload: { case: "chunk" as const, value: chunk } }),
        ended,
      ),
    answer,
  );
}

/** CreateImageStream, collected into one ImagesResult with the images' bytes in place. */
export async function generateStream(
  client: ImagesClient,
  params: MessageInitShape<typeof GenerationParametersSchema>,
  options: StreamOptions = {},
): Promise<ImagesResult> {
  const { onPartial, ...callOptions } = options;
  const call = client.createImageStream({ parameters: params }, callOptions);
  try {
    return await collect(call, onPartial);
  } catch (error) {
    call.cancel(); // a broken stream: stop the call rather than leave it running
    throw error;
  }
}
