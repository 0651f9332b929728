"""Reference timing for `npm run bench:io` on DICOM folders: pydicom + numpy reading every file, sorting
slices by position along the normal, rescaling to HU and stacking (no tilt or gap correction).
Prints one JSON line: {"seconds": [...], "cpu_seconds": [...], "voxels": N}."""
import json
import os
import sys
import time

import numpy as np
import pydicom


def read_series(folder):
    slices = []
    for name in sorted(os.listdir(folder)):
        try:
            ds = pydicom.dcmread(os.path.join(folder, name))
        except Exception:
            continue
        if "PixelData" not in ds:
            continue
        slices.append(ds)
    row, col = np.array(slices[0].ImageOrientationPatient[:3]), np.array(slices[0].ImageOrientationPatient[3:])
    normal = np.cross(row, col)
    slices.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float))))
    out = np.empty((len(slices), slices[0].Rows, slices[0].Columns), dtype=np.int16)
    for k, ds in enumerate(slices):
        slope = float(getattr(ds, "RescaleSlope", 1))
        intercept = float(getattr(ds, "RescaleIntercept", 0))
        out[k] = np.round(ds.pixel_array * slope + intercept)
    return out


def main():
    folder, runs = sys.argv[1], int(sys.argv[2])
    try:
        read_series(folder)
    except Exception as error:  # e.g. JPEG 2000 without a decoder plugin
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return
    seconds = []
    cpu_seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        cpu_start = time.process_time()
        data = read_series(folder)
        cpu_seconds.append(time.process_time() - cpu_start)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "voxels": int(data.size)}))


if __name__ == "__main__":
    main()
