/**
 * Builds NIfTI files byte by byte, independently of the product's own writer, so reader tests do not
 * check the reader against code that shares its assumptions.
 */

export interface RawNiftiSpec {
  version?: 1 | 2;
  dims: number[];
  /** NIfTI datatype code: 2 uint8, 4 int16, 16 float32, 64 float64, 512 uint16, … */
  datatype: number;
  values: ArrayLike<number>;
  pixdim?: [number, number, number];
  /** Row-major 3×4 sform; omitted → sform_code 0. */
  sform?: number[];
  qform?: { b: number; c: number; d: number; offset: [number, number, number]; qfac?: 1 | -1 };
  sclSlope?: number;
  sclInter?: number;
  bigEndian?: boolean;
  xyztUnits?: number;
}

const BYTES: Record<number, number> = { 2: 1, 4: 2, 8: 4, 16: 4, 64: 8, 256: 1, 512: 2, 768: 4 };

function writeValue(view: DataView, at: number, datatype: number, value: number, le: boolean): void {
  switch (datatype) {
    case 2: view.setUint8(at, value); break;
    case 4: view.setInt16(at, value, le); break;
    case 8: view.setInt32(at, value, le); break;
    case 16: view.setFloat32(at, value, le); break;
    case 64: view.setFloat64(at, value, le); break;
    case 256: view.setInt8(at, value); break;
    case 512: view.setUint16(at, value, le); break;
    case 768: view.setUint32(at, value, le); break;
    default: throw new Error(`test helper: datatype ${datatype}`);
  }
}

export function rawNifti(spec: RawNiftiSpec): Buffer {
  const version = spec.version ?? 1;
  const le = !spec.bigEndian;
  const voxOffset = version === 1 ? 352 : 544;
  const bytesPerVoxel = BYTES[spec.datatype];
  const out = Buffer.alloc(voxOffset + spec.values.length * bytesPerVoxel);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const pixdim = spec.pixdim ?? [1, 1, 1];
  const qfac = spec.qform?.qfac ?? 1;
  const dims = [spec.dims.length, ...spec.dims];
  while (dims.length < 8) dims.push(1);
  const slope = spec.sclSlope ?? 1;
  const inter = spec.sclInter ?? 0;
  const sform = spec.sform;
  if (version === 1) {
    view.setInt32(0, 348, le);
    dims.forEach((d, n) => view.setInt16(40 + 2 * n, d, le));
    view.setInt16(70, spec.datatype, le);
    view.setInt16(72, bytesPerVoxel * 8, le);
    [qfac, ...pixdim, 1, 1, 1, 1].forEach((p, n) => view.setFloat32(76 + 4 * n, p, le));
    view.setFloat32(108, voxOffset, le);
    view.setFloat32(112, slope, le);
    view.setFloat32(116, inter, le);
    view.setUint8(123, spec.xyztUnits ?? 2);
    view.setInt16(252, spec.qform ? 1 : 0, le);
    view.setInt16(254, sform ? 1 : 0, le);
    if (spec.qform) {
      [spec.qform.b, spec.qform.c, spec.qform.d, ...spec.qform.offset].forEach((v, n) => view.setFloat32(256 + 4 * n, v, le));
    }
    if (sform) sform.forEach((v, n) => view.setFloat32(280 + 4 * n, v, le));
    out.write('n+1\0', 344, 'latin1');
  } else {
    view.setInt32(0, 540, le);
    out.write('n+2\0\r\n\x1a\n', 4, 'latin1');
    view.setInt16(12, spec.datatype, le);
    view.setInt16(14, bytesPerVoxel * 8, le);
    dims.forEach((d, n) => view.setBigInt64(16 + 8 * n, BigInt(d), le));
    [qfac, ...pixdim, 1, 1, 1, 1].forEach((p, n) => view.setFloat64(104 + 8 * n, p, le));
    view.setBigInt64(168, BigInt(voxOffset), le);
    view.setFloat64(176, slope, le);
    view.setFloat64(184, inter, le);
    view.setInt32(344, spec.qform ? 1 : 0, le);
    view.setInt32(348, sform ? 1 : 0, le);
    if (spec.qform) {
      [spec.qform.b, spec.qform.c, spec.qform.d, ...spec.qform.offset].forEach((v, n) => view.setFloat64(352 + 8 * n, v, le));
    }
    if (sform) sform.forEach((v, n) => view.setFloat64(400 + 8 * n, v, le));
    view.setInt32(500, spec.xyztUnits ?? 2, le);
  }
  for (let n = 0; n < spec.values.length; n++) writeValue(view, voxOffset + n * bytesPerVoxel, spec.datatype, spec.values[n], le);
  return out;
}
