/**
 * Calls a running imagegate gateway the way a Node service would, through
 * @imagegate/client-stubs (imported by its package name, so it resolves to the
 * built package exactly as a dependency would), and checks what comes back.
 *
 *   npm run build && npm run build:example
 *   IMAGEGATE_TARGET=127.0.0.1:50051 [IMAGEGATE_TOKEN=igk_...] npm run example
 *
 * With IMAGEGATE_LONG_ERROR_TARGET set to a gateway whose upstream answers every
 * call with an error whose code and param are thousands of characters long, it
 * also checks that this default client still gets the gateway's status and
 * x-request-id. Exits 1 if any check fails.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";
import { credentials, status as grpcStatus } from "@grpc/grpc-js";
import {
  BadRequestSchema,
  Delivery,
  ErrorInfoSchema,
  OutputFormat,
  bearerMetadata,
  createImagesClient,
  createQuotaClient,
  edit,
  editStream,
  errorDetail,
  fileFromBytes,
  fileFromPath,
  generateStream,
  imageBytes,
  isServiceError,
  type CallOptions,
  type ImagesClient,
} from "@imagegate/client-stubs";

/** gRPC's default receive limit, which this client keeps. */
const DEFAULT_RECEIVE_LIMIT = 4 * 1024 * 1024;
/** A long prompt gives the emulator's pictures enough detail for ~5 MiB in five JPEGs. */
const DETAILED_PROMPT =
  "a detailed lighthouse on a rocky coast at dusk with waves crashing seagulls flying clouds " +
  "glowing orange and purple fishing boats returning home lanterns lit on the pier a keeper " +
  "waving from the gallery rain starting to fall over the distant hills and a rainbow";
const PNG_MAGIC = Buffer.from("\x89PNG\r\n\x1a\n", "latin1");
const JPEG_MAGIC = Buffer.from([0xff, 0xd8, 0xff]);

const target = process.env.IMAGEGATE_TARGET ?? "127.0.0.1:50051";
const token = process.env.IMAGEGATE_TOKEN;
// No grpc.max_receive_message_length option: the default 4 MiB limit applies.
const client = createImagesClient(target, credentials.createInsecure());

/** Each call's options: a deadline, and the bearer token when one is set. */
function callOptions(seconds: number): CallOptions {
  return {
    deadline: Date.now() + seconds * 1000,
    ...(token ? { metadata: bearerMetadata(token) } : {}),
  };
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function startsWith(data: Uint8Array, magic: Buffer): boolean {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).subarray(0, magic.length).equals(magic);
}

async function unary(images: ImagesClient): Promise<Uint8Array> {
  const response = await images.createImage(
    {
      parameters: {
        prompt: "a red fox in the snow",
        model: "gpt-image-2",
        size: "1024x1024",
        outputFormat: OutputFormat.PNG,
      },
    },
    callOptions(60),
  );
  const generated = response.result?.images ?? [];
  const content = generated[0]?.content;
  check(generated.length === 1 && content?.case === "data", `want 1 image with data, got ${generated.length}`);
  check(startsWith(content.value, PNG_MAGIC), "the image is not a PNG");
  console.log(`     1 PNG, ${content.value.length} bytes`);
  return content.value;
}

/** DELIVERY_STORED: links into the gateway's result store, fetched by imageBytes. */
async function stored(images: ImagesClient): Promise<void> {
  const parameters = {
    prompt: "a paper boat on a pond",
    model: "gpt-image-2",
    n: 2,
    size: "1024x1024",
    delivery: Delivery.STORED,
  };
  const unaryResult = (await images.createImage({ parameters }, callOptions(60))).result;
  check(unaryResult !== undefined, "no result");
  const streamed = await generateStream(images, parameters, callOptions(60));
  for (const result of [unaryResult, streamed]) {
    check(result.images.every((image) => image.content.case === "stored"), "an image is not stored");
    const fetched = await imageBytes(result);
    check(fetched.length === 2 && fetched.every((data) => startsWith(data, PNG_MAGIC)), "want 2 PNGs from the links");
  }
  const first = unaryResult.images[0]?.content;
  check(first?.case === "stored", "no stored image");
  console.log(`     2+2 stored PNGs, e.g. ${first.value.object} (${first.value.sizeBytes} bytes)`);
}

async function streamLarge(images: ImagesClient): Promise<void> {
  const result = await generateStream(
    images,
    { prompt: DETAILED_PROMPT, model: "gpt-image-2", n: 5, size: "3840x2160", outputFormat: OutputFormat.JPEG },
    callOptions(120),
  );
  check(result.images.length === 5, `want 5 images, got ${result.images.length}`);
  let total = 0;
  for (const image of result.images) {
    check(image.content.case === "data" && startsWith(image.content.value, JPEG_MAGIC), "an image is not a JPEG");
    total += image.content.value.length;
  }
  check(total > DEFAULT_RECEIVE_LIMIT, `the result is ${total} bytes, not over 4 MiB`);
  console.log(`     5 JPEGs, ${(total / 2 ** 20).toFixed(2)} MiB in all`);
}

/** A PNG (RGBA) that is opaque except for a transparent square in the middle. */
function centreMask(width: number, height: number): Buffer {
  const rows = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 4 + 1); // each row starts with filter type 0
    for (let x = 0; x < width; x++) {
      const centre = x > width / 4 && x < (3 * width) / 4 && y > height / 4 && y < (3 * height) / 4;
      rows[row + 1 + x * 4 + 3] = centre ? 0 : 255;
    }
  }
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, no interlace
  return Buffer.concat([PNG_MAGIC, chunk("IHDR", header), chunk("IDAT", deflateSync(rows)), chunk("IEND", Buffer.alloc(0))]);
}

function pngSize(data: Uint8Array): { width: number; height: number } {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return { width: view.readUInt32BE(16), height: view.readUInt32BE(20) };
}

async function editWithMask(images: ImagesClient, input: Uint8Array): Promise<void> {
  const { width, height } = pngSize(input);
  // The mask goes up from a file and the image from memory, to use both helpers.
  const dir = await mkdtemp(join(tmpdir(), "imagegate-ts-"));
  try {
    const maskPath = join(dir, "mask.png");
    await writeFile(maskPath, centreMask(width, height));
    const mask = await fileFromPath(maskPath);
    const result = await editStream(
      images,
      { prompt: "add a full moon", model: "gpt-image-2" },
      { images: [fileFromBytes("fox.png", input)], mask },
      callOptions(60),
    );
    const content = result.images[0]?.content;
    check(result.images.length === 1 && content?.case === "data", `want 1 image, got ${result.images.length}`);
    check(startsWith(content.value, PNG_MAGIC), "the edit is not a PNG");
    const edited = pngSize(content.value);
    console.log(`     edited ${edited.width}x${edited.height} PNG (mask ${mask.size} bytes)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function invalidArgument(images: ImagesClient): Promise<void> {
  try {
    await images.createImage({ parameters: { prompt: "a red fox", model: "gpt-image-2", n: 0 } }, callOptions(30));
  } catch (error) {
    check(isServiceError(error), `not a gRPC error: ${error}`);
    check(error.code === grpcStatus.INVALID_ARGUMENT, `want INVALID_ARGUMENT, got ${error.code}: ${error.details}`);
    const badRequest = errorDetail(error, BadRequestSchema);
    check(badRequest !== undefined, "no google.rpc.BadRequest in the error details");
    for (const violation of badRequest.fieldViolations) {
      console.log(`     BadRequest: ${violation.field}: ${violation.description}`);
    }
    check(
      badRequest.fieldViolations.some((v) => v.field === "parameters.n"),
      "no BadRequest field violation for parameters.n",
    );
    return;
  }
  throw new Error("n=0 was accepted");
}

/**
 * A dall-e-2 edit whose image is over that model's 4 MB cap: the gateway ends the
 * call while the client still has megabytes to send; the helper must stop writing
 * and reject with the gateway's status, not hang waiting for a drain.
 */
async function refusedUpload(images: ImagesClient): Promise<void> {
  const oversized = new Uint8Array(8 * 1024 * 1024 + 8);
  oversized.set(PNG_MAGIC);
  // From a file, so the refusal arrives while chunks are still being read from disk.
  const dir = await mkdtemp(join(tmpdir(), "imagegate-ts-"));
  try {
    const path = join(dir, "big.png");
    await writeFile(path, oversized);
    await edit(images, { prompt: "too big", model: "dall-e-2" }, { images: [await fileFromPath(path)] }, callOptions(30));
  } catch (error) {
    check(isServiceError(error), `not a gRPC error: ${error}`);
    check(error.code === grpcStatus.INVALID_ARGUMENT, `want INVALID_ARGUMENT, got ${error.code}: ${error.details}`);
    console.log(`     INVALID_ARGUMENT: ${error.details}`);
    return;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  throw new Error("the oversized upload was accepted");
}

/** Who the gateway says the caller is, and what it spent today (after the images above). */
async function quota(): Promise<void> {
  const quotas = createQuotaClient(target, credentials.createInsecure());
  try {
    const answer = await quotas.getQuota({}, callOptions(30));
    const spent = answer.spentTodayUsdMicros;
    console.log(`     client ${answer.client}: $${spent / 1_000_000n}.${String(spent % 1_000_000n).padStart(6, "0")} spent today (UTC)`);
    check(!token || (answer.client !== "" && answer.client !== "anonymous"), `called with a token, but the caller is "${answer.client}"`);
    check(spent > 0n, `spent today is ${spent} micro-dollars after this run's images`);
  } finally {
    quotas.close();
  }
}

/**
 * A gateway whose upstream refuses every call with an OpenAI error whose code and
 * param are 5,000 characters each, called on a new channel with grpc-js's default
 * limits. Relayed whole, those fields made a status too large for default clients,
 * which then reported their own error instead of the gateway's status and x-request-id.
 */
async function longUpstreamError(longErrorTarget: string): Promise<void> {
  const failing = createImagesClient(longErrorTarget, credentials.createInsecure());
  try {
    await failing.createImage({ parameters: { prompt: "a red fox", model: "gpt-image-2" } }, callOptions(30));
  } catch (error) {
    check(isServiceError(error), `not a gRPC error: ${error}`);
    check(
      error.code === grpcStatus.INVALID_ARGUMENT,
      `want the upstream's refusal as INVALID_ARGUMENT, got ${grpcStatus[error.code]}: ${error.details.slice(0, 200)}`,
    );
    const [requestId] = error.metadata.get("x-request-id");
    check(typeof requestId === "string" && requestId !== "", "no x-request-id in the trailers");
    const info = errorDetail(error, ErrorInfoSchema);
    check(info?.domain === "api.openai.com", "no ErrorInfo from api.openai.com in the status details");
    console.log(`     INVALID_ARGUMENT, x-request-id ${requestId}, ErrorInfo reason of ${info.reason.length} characters`);
    return;
  } finally {
    failing.close();
  }
  throw new Error("the upstream's refusal came back as a success");
}

let passed = 0;
let failed = 0;
async function run(name: string, body: () => Promise<void>): Promise<void> {
  const started = performance.now();
  try {
    await body();
    passed++;
    console.log(`ok   ${name} (${((performance.now() - started) / 1000).toFixed(1)}s)`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

let first: Uint8Array | undefined;
await run("unary CreateImage", async () => {
  first = await unary(client);
});
await run("stored results: links fetched with a plain GET (unary and streamed)", () => stored(client));
await run("streamed result over 4 MiB at the default receive limit", () => streamLarge(client));
await run("edit upload with a mask (CreateImageEditStream)", async () => {
  check(first !== undefined, "no input image: the unary check failed");
  await editWithMask(client, first);
});
await run("INVALID_ARGUMENT with BadRequest field violations", () => invalidArgument(client));
await run("upload refused mid-way reports the gateway's status", () => refusedUpload(client));
await run("GetQuota: the caller's client id and spend today", () => quota());
const longErrorTarget = process.env.IMAGEGATE_LONG_ERROR_TARGET;
if (longErrorTarget) {
  await run("upstream error with 5,000-character code and param: status and x-request-id", () =>
    longUpstreamError(longErrorTarget),
  );
}
client.close();
console.log(`typescript: ${passed} passed, ${failed} failed`);
// No process.exit on success: the process must end by itself, which shows that no
// call or stream was left open.
process.exitCode = failed === 0 ? 0 : 1;
