// Bundle freshness test and the bundle loader (manifest, integrity, image choice).
import assert from "node:assert/strict";
import {
  appendFileSync,
  cpSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, describe, test } from "node:test";
import {
  BackendUnavailableError,
  DriverTooOldError,
  LibraryLoadError,
} from "../src/errors.ts";
import {
  archCapability,
  type BundleManifest,
  checkDriverVersion,
  defaultBundleDir,
  driverBranchFor,
  KernelBundle,
  parseBundleManifest,
  readBundleManifest,
  requiredDriverVersion,
  selectBundleImage,
} from "../src/cuda/bundle.ts";
import {
  buildBundle,
  checkBundle,
  checkSources,
  compareBundleDirs,
  CUBIN_ARCHS,
  findNvcc,
  parseNvccVersion,
  PTX_ARCH,
  ptxKernelNames,
  REPO_ROOT,
} from "../scripts/build_kernels.ts";

/**
 * Full nvcc rebuilds take minutes for the whole bundle, so they run where
 * asked for (CI sets RINGKERNEL_NVCC_TESTS=1 for one Deno run of this file);
 * the hash checks below run everywhere.
 */
const NVCC_TESTS_ENV_VAR = "RINGKERNEL_NVCC_TESTS";
const nvccTestsWanted = process.env[NVCC_TESTS_ENV_VAR] === "1";
const nvcc = nvccTestsWanted ? findNvcc() : null;
const nvccSkipReason = !nvccTestsWanted
  ? `full nvcc rebuilds run only with ${NVCC_TESTS_ENV_VAR}=1 (as in CI)`
  : nvcc
  ? undefined
  : "nvcc not found";
if (nvccSkipReason) {
  console.log(`bundle_test: rebuild comparisons skipped: ${nvccSkipReason}`);
}
/** nvcc builds take a minute or more on a loaded machine: beyond Bun's 5 s default. */
const BUILD_TIMEOUT_MS = 600_000;
const nvccOptions = nvccSkipReason
  ? { skip: nvccSkipReason }
  : { timeout: BUILD_TIMEOUT_MS };

const scratch = mkdtempSync(join(tmpdir(), "rk-bundle-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let copies = 0;

/** A private copy of the repository's cuda/ (sources and bundle) under a fresh root. */
function copyRoot(): string {
  const root = join(scratch, `root${copies++}`);
  cpSync(join(REPO_ROOT, "cuda"), join(root, "cuda"), { recursive: true });
  return root;
}

function manifestText(edit: (m: Record<string, unknown>) => void): string {
  const raw = JSON.parse(
    readFileSync(join(defaultBundleDir(), "manifest.json"), "utf8"),
  );
  edit(raw);
  return JSON.stringify(raw);
}

describe("bundle freshness", () => {
  test("every source and output matches the committed manifest", () => {
    assert.deepEqual(checkSources(REPO_ROOT), []);
  });

  test("an edited, added or removed source is reported as drift", () => {
    const root = copyRoot();
    appendFileSync(join(root, "cuda", "probes.cu"), "\n// edited\n");
    writeFileSync(
      join(root, "cuda", "extra.cu"),
      'extern "C" __global__ void rk_extra() {}\n',
    );
    unlinkSync(join(root, "cuda", "echo_queue.cu"));
    const drift = checkSources(root);
    const byFile = new Map(drift.map((d) => [d.file, d.problem]));
    assert.match(
      byFile.get("probes.cu") ?? "",
      /changed since the bundle was built/,
    );
    assert.match(byFile.get("extra.cu") ?? "", /new source/);
    assert.match(byFile.get("echo_queue.cu") ?? "", /removed/);
    assert.equal(drift.length, 3);
  });

  test("a corrupt, missing or stray output file is reported as drift", () => {
    const root = copyRoot();
    const bundle = join(root, "cuda", "bundle");
    const manifest = readBundleManifest(bundle);
    const [ptx, cubin, other] = [
      manifest.outputs.find((o) => o.kind === "ptx")!,
      manifest.outputs.find((o) => o.kind === "cubin")!,
      manifest.outputs.filter((o) => o.kind === "cubin")[1],
    ];
    const bytes = readFileSync(join(bundle, ptx.file));
    bytes[100] ^= 0x01;
    writeFileSync(join(bundle, ptx.file), bytes);
    truncateSync(join(bundle, cubin.file), 10);
    unlinkSync(join(bundle, other.file));
    writeFileSync(join(bundle, "leftover.ptx"), "old");
    const byFile = new Map(checkSources(root).map((d) => [d.file, d.problem]));
    assert.match(byFile.get(`bundle/${ptx.file}`) ?? "", /corrupt: sha256/);
    assert.match(byFile.get(`bundle/${cubin.file}`) ?? "", /corrupt: 10 bytes/);
    assert.match(byFile.get(`bundle/${other.file}`) ?? "", /cannot be read/);
    assert.match(byFile.get("bundle/leftover.ptx") ?? "", /stray file/);
  });

  test("a missing manifest is reported as drift", () => {
    const root = copyRoot();
    unlinkSync(join(root, "cuda", "bundle", "manifest.json"));
    const drift = checkSources(root);
    assert.equal(drift.length, 1);
    assert.match(drift[0].problem, /cannot be read/);
  });

  test("without nvcc the rebuild is skipped, or fails with --require-nvcc", async () => {
    const skipped = await checkBundle({ rootDir: REPO_ROOT, nvcc: null });
    assert.equal(skipped.rebuilt, false);
    assert.match(skipped.skipped ?? "", /nvcc not found/);
    assert.deepEqual(skipped.drift, []);
    const required = await checkBundle({
      rootDir: REPO_ROOT,
      nvcc: null,
      requireNvcc: true,
    });
    assert.equal(required.drift.length, 1);
    assert.match(required.drift[0].problem, /--require-nvcc/);
  });

  test(
    "a rebuild reproduces the committed bundle byte for byte",
    nvccOptions,
    async () => {
      const report = await checkBundle({ rootDir: REPO_ROOT, nvcc });
      assert.equal(report.rebuilt, true);
      assert.deepEqual(report.drift, []);
    },
  );

  test(
    "two builds in different directories are identical",
    nvccOptions,
    async () => {
      const a = join(scratch, "build-a");
      const b = join(scratch, "nested", "dir", "build-b");
      const first = await buildBundle({
        rootDir: REPO_ROOT,
        outDir: a,
        nvcc: nvcc!,
      });
      await buildBundle({ rootDir: copyRoot(), outDir: b, nvcc: nvcc! });
      assert.deepEqual(compareBundleDirs(a, b), []);
      assert.deepEqual(
        first.kernels,
        readBundleManifest(defaultBundleDir()).kernels,
      );
      for (
        const name of [
          "rk_actor_pool",
          "rk_echo_queue",
          "rk_echo_word",
          "rk_empty",
        ]
      ) {
        assert.ok(first.kernels.includes(name), `${name} is built`);
      }
      assert.equal(first.ptxArch, PTX_ARCH);
      assert.deepEqual(
        first.cubinArchs,
        CUBIN_ARCHS.filter((arch) => nvcc!.gpuCodes.includes(arch)),
      );
    },
  );

  test(
    "a changed kernel source makes the rebuild differ from the bundle",
    nvccOptions,
    async () => {
      const root = copyRoot();
      appendFileSync(
        join(root, "cuda", "probes.cu"),
        '\nextern "C" __global__ void rk_drift_probe() {}\n',
      );
      const report = await checkBundle({ rootDir: root, nvcc });
      const files = report.drift.map((d) => d.file);
      assert.ok(files.includes("probes.cu"), files.join(", "));
      assert.ok(files.includes("manifest.json"), files.join(", "));
      assert.ok(files.includes(`ringkernel.${PTX_ARCH}.ptx`), files.join(", "));
      assert.ok(
        report.drift.some((d) => /differs from the rebuild/.test(d.problem)),
      );
    },
  );

  test("compareBundleDirs reports missing, extra and differing files", () => {
    const a = join(scratch, "cmp-a");
    const b = join(scratch, "cmp-b");
    cpSync(defaultBundleDir(), a, { recursive: true });
    cpSync(defaultBundleDir(), b, { recursive: true });
    writeFileSync(join(b, "new.cubin"), "x");
    unlinkSync(join(b, "ringkernel.sm_80.cubin"));
    appendFileSync(join(b, `ringkernel.${PTX_ARCH}.ptx`), "//");
    const byFile = new Map(
      compareBundleDirs(a, b).map((d) => [d.file, d.problem]),
    );
    assert.match(byFile.get("new.cubin") ?? "", /not committed/);
    assert.match(
      byFile.get("ringkernel.sm_80.cubin") ?? "",
      /does not produce it/,
    );
    assert.match(
      byFile.get(`ringkernel.${PTX_ARCH}.ptx`) ?? "",
      /first difference at byte \d+/,
    );
  });
});

describe("build helpers", () => {
  test("parseNvccVersion reads the release and build lines", () => {
    const identity = parseNvccVersion(
      "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 13.0, V13.0.88\n" +
        "Build cuda_13.0.r13.0/compiler.36424714_0\n",
    );
    assert.deepEqual(identity, {
      version: "13.0.88",
      release: "Cuda compilation tools, release 13.0, V13.0.88",
      build: "Build cuda_13.0.r13.0/compiler.36424714_0",
    });
    assert.equal(parseNvccVersion("gcc (GCC) 13.2"), undefined);
  });

  test("ptxKernelNames lists the entries, sorted", () => {
    const ptx =
      ".visible .entry zeta(\n.param .u64 p)\n{}\n.visible .entry alpha()\n{}\n.func helper()\n";
    assert.deepEqual(ptxKernelNames(ptx), ["alpha", "zeta"]);
  });
});

describe("KernelBundle", () => {
  const bundle = KernelBundle.open();

  test("opens the shipped bundle and lists its kernels", () => {
    assert.ok(bundle.dir.replaceAll("\\", "/").endsWith("/cuda/bundle"));
    for (const name of ["rk_empty", "rk_echo_word", "rk_echo_queue"]) {
      assert.ok(bundle.hasKernel(name), name);
    }
    assert.equal(bundle.hasKernel("rk_missing"), false);
    bundle.requireKernels(["rk_empty"]);
    assert.throws(
      () => bundle.requireKernels(["rk_empty", "rk_missing"]),
      (e: unknown) => {
        return e instanceof LibraryLoadError && /rk_missing/.test(e.message);
      },
    );
    bundle.verify();
  });

  test("picks the cubin of the same major with the highest minor not above the device's", () => {
    const pick = (major: number, minor: number) =>
      bundle.selectImage({ major, minor }).file;
    assert.equal(pick(8, 0), "ringkernel.sm_80.cubin");
    assert.equal(pick(8, 6), "ringkernel.sm_80.cubin");
    assert.equal(pick(8, 9), "ringkernel.sm_80.cubin");
    assert.equal(pick(9, 0), "ringkernel.sm_90.cubin");
    assert.equal(pick(10, 0), "ringkernel.sm_100.cubin");
    assert.equal(pick(10, 3), "ringkernel.sm_100.cubin");
    assert.equal(pick(12, 0), "ringkernel.sm_120.cubin");
    assert.equal(pick(12, 1), "ringkernel.sm_120.cubin");
  });

  test("falls back to the PTX where no cubin fits, or when asked", () => {
    const ptx = `ringkernel.${PTX_ARCH}.ptx`;
    assert.equal(bundle.selectImage({ major: 11, minor: 0 }).file, ptx);
    assert.equal(bundle.selectImage({ major: 13, minor: 0 }).file, ptx);
    assert.equal(
      bundle.selectImage({ major: 9, minor: 0 }, { preferPtx: true }).file,
      ptx,
    );
  });

  test("refuses devices older than the PTX, and nonsense capabilities", () => {
    for (
      const cc of [{ major: 7, minor: 5 }, { major: 9, minor: 10 }, {
        major: Number.NaN,
        minor: 0,
      }]
    ) {
      assert.throws(() => bundle.selectImage(cc), BackendUnavailableError);
    }
    assert.throws(
      () => bundle.selectImage({ major: 7, minor: 5 }),
      /no image for compute capability 7\.5/,
    );
  });

  test("prefers the closest cubin among several of one major", () => {
    const base = bundle.manifest;
    const cubin = base.outputs.find((o) => o.arch === "sm_80")!;
    const manifest: BundleManifest = {
      ...base,
      cubinArchs: ["sm_80", "sm_86"],
      outputs: [base.outputs[0], cubin, {
        ...cubin,
        file: "x.sm_86.cubin",
        arch: "sm_86",
      }],
    };
    assert.equal(
      selectBundleImage(manifest, { major: 8, minor: 5 }).arch,
      "sm_80",
    );
    assert.equal(
      selectBundleImage(manifest, { major: 8, minor: 6 }).arch,
      "sm_86",
    );
    assert.equal(
      selectBundleImage(manifest, { major: 8, minor: 9 }).arch,
      "sm_86",
    );
    assert.equal(
      selectBundleImage(manifest, { major: 9, minor: 0 }).kind,
      "ptx",
    );
  });

  test("returns PTX NUL-terminated and cubins as ELF", () => {
    const ptx = bundle.loadImage({ major: 9, minor: 0 }, { preferPtx: true });
    assert.equal(ptx.data.byteLength, ptx.output.size + 1);
    assert.equal(ptx.data[ptx.data.byteLength - 1], 0);
    assert.ok(
      new TextDecoder().decode(ptx.data.subarray(0, 200)).includes(
        `.target sm_${PTX_ARCH.slice(8)}`,
      ),
    );
    const cubin = bundle.loadImage({ major: 9, minor: 0 });
    assert.equal(cubin.output.arch, "sm_90");
    assert.deepEqual([...cubin.data.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
  });

  test("detects a corrupt image before it reaches the driver", () => {
    const dir = join(copyRoot(), "cuda", "bundle");
    const copy = KernelBundle.open({ dir });
    const ptx = copy.selectImage({ major: 9, minor: 0 }, { preferPtx: true });
    const bytes = readFileSync(join(dir, ptx.file));
    bytes[bytes.byteLength - 2] ^= 0x20;
    writeFileSync(join(dir, ptx.file), bytes);
    assert.throws(
      () => copy.loadImage({ major: 9, minor: 0 }, { preferPtx: true }),
      (e: unknown) => {
        return e instanceof LibraryLoadError &&
          /corrupt: sha256/.test(e.message) && e.tried[0].endsWith(ptx.file);
      },
    );
    assert.throws(() => copy.verify(), LibraryLoadError);
    copy.loadImage({ major: 9, minor: 0 });
  });

  test("reports a missing bundle or manifest with a typed error", () => {
    assert.throws(
      () => KernelBundle.open({ dir: join(scratch, "nowhere") }),
      LibraryLoadError,
    );
  });

  test("rejects invalid manifests", () => {
    const bad = [
      "not json",
      "[]",
      manifestText((m) => (m.format = 2)),
      manifestText((m) => delete m.kernels),
      manifestText((
        m,
      ) => ((m.outputs as Array<Record<string, unknown>>)[0].file =
        "../escape.ptx")
      ),
      manifestText((
        m,
      ) => ((m.outputs as Array<Record<string, unknown>>)[1].sha256 = "abc")),
      manifestText((
        m,
      ) => ((m.outputs as Array<Record<string, unknown>>)[1].kind = "ptx")),
      manifestText((
        m,
      ) => ((m.outputs as Array<Record<string, unknown>>)[1].size = -1)),
      manifestText((m) =>
        (m.outputs as unknown[]).push((m.outputs as unknown[])[1])
      ),
      manifestText((m) => (m.cubinArchs as string[]).push("sm_75")),
      manifestText((
        m,
      ) => ((m.sources as Record<string, string>)["probes.cu"] = "zz")),
    ];
    for (const text of bad) {
      assert.throws(
        () => parseBundleManifest(text, "test.json"),
        LibraryLoadError,
        text.slice(0, 60),
      );
    }
    assert.equal(
      parseBundleManifest(manifestText(() => {})).module,
      "ringkernel",
    );
  });

  test("archCapability reads sm_ and compute_ names", () => {
    assert.deepEqual(archCapability("sm_90"), { major: 9, minor: 0 });
    assert.deepEqual(archCapability("compute_80"), { major: 8, minor: 0 });
    assert.deepEqual(archCapability("sm_120"), { major: 12, minor: 0 });
    assert.equal(archCapability("sm_90a"), undefined);
  });
});

describe("the driver a bundle needs", () => {
  test("comes from the nvcc that built it, and names the driver branch", () => {
    const manifest = KernelBundle.open().manifest;
    assert.match(manifest.nvcc.version, /^13\.0\./);
    assert.equal(requiredDriverVersion(manifest), 13000);
    assert.equal(driverBranchFor(13000), "R580");
    assert.equal(driverBranchFor(12040), "R550");
    assert.equal(driverBranchFor(12070), "R560");
    assert.equal(driverBranchFor(14000), "supporting CUDA 14.0");
    assert.throws(
      () =>
        requiredDriverVersion({
          ...manifest,
          nvcc: { ...manifest.nvcc, version: "unknown" },
        }),
      LibraryLoadError,
    );
  });

  test("an older driver gets a typed error naming what to install; a newer one passes", () => {
    const manifest = KernelBundle.open().manifest;
    checkDriverVersion(13000, manifest);
    checkDriverVersion(13010, manifest);
    const error = (() => {
      try {
        checkDriverVersion(12080, manifest);
      } catch (error) {
        return error;
      }
    })();
    assert.ok(error instanceof DriverTooOldError);
    assert.ok(
      error instanceof BackendUnavailableError,
      "a reason to fall back",
    );
    assert.equal(error.backend, "cuda");
    assert.equal(error.driverVersion, 12080);
    assert.equal(error.requiredVersion, 13000);
    assert.equal(error.requiredDriver, "R580");
    assert.match(
      error.message,
      /supports only CUDA 12\.8; the kernel bundle \(built with CUDA 13\.0\.\d+\) needs CUDA 13\.0: install driver R580 or newer/,
    );
  });
});

describe("kernel bundle faults", () => {
  function copyBundle(): string {
    const dir = mkdtempSync(join(tmpdir(), "ringkernel-bundle-"));
    cpSync(defaultBundleDir(), dir, { recursive: true });
    return dir;
  }

  test("a corrupt, truncated or missing image is refused with LibraryLoadError naming the file", () => {
    const dir = copyBundle();
    try {
      const bundle = KernelBundle.open({ dir });
      bundle.verify();
      const ptx = bundle.manifest.outputs.find((o) => o.kind === "ptx")!;
      const cubin = bundle.manifest.outputs.find((o) => o.kind === "cubin")!;
      const ptxPath = join(dir, ptx.file);
      const cubinPath = join(dir, cubin.file);

      const original = readFileSync(ptxPath);
      const corrupt = Uint8Array.from(original);
      corrupt[corrupt.length >> 1] ^= 0x20;
      writeFileSync(ptxPath, corrupt);
      const cc = archCapability(ptx.arch)!;
      assert.throws(
        () => bundle.loadImage(cc, { preferPtx: true }),
        (e: unknown) =>
          e instanceof LibraryLoadError && /corrupt: sha256/.test(e.message) &&
          e.tried.includes(ptxPath),
      );
      assert.throws(() => bundle.verify(), LibraryLoadError);

      writeFileSync(ptxPath, original);
      truncateSync(cubinPath, 16);
      assert.throws(
        () => bundle.verify(),
        (e: unknown) =>
          e instanceof LibraryLoadError && /corrupt: 16 bytes/.test(e.message),
      );

      unlinkSync(ptxPath);
      assert.throws(
        () => bundle.loadImage(cc, { preferPtx: true }),
        (e: unknown) =>
          e instanceof LibraryLoadError && /cannot be read/.test(e.message) &&
          e.tried.includes(ptxPath),
      );

      writeFileSync(join(dir, "manifest.json"), "{ not json");
      assert.throws(() => KernelBundle.open({ dir }), LibraryLoadError);
      unlinkSync(join(dir, "manifest.json"));
      assert.throws(() => KernelBundle.open({ dir }), LibraryLoadError);
      // The shipped bundle is untouched.
      KernelBundle.open().verify();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
