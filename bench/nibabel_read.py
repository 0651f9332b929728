"""Reference timing for `npm run bench:io`: nibabel + numpy doing the same work as mir3d's reader
(read, decompress, apply scaling, reorient to LPS, materialize an i-fastest contiguous array).
Prints one JSON line: {"seconds": [...], "voxels": N}."""
import json
import sys
import time

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform


def read_canonical(path):
    image = nib.load(path)
    data = np.asanyarray(image.dataobj)
    transform = ornt_transform(io_orientation(image.affine), axcodes2ornt("LPS"))
    return np.asfortranarray(apply_orientation(data, transform))


def main():
    path, runs = sys.argv[1], int(sys.argv[2])
    read_canonical(path)  # warm-up: imports, page cache
    seconds = []
    cpu_seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        cpu_start = time.process_time()
        data = read_canonical(path)
        cpu_seconds.append(time.process_time() - cpu_start)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "voxels": int(data.size), "dtype": str(data.dtype)}))


if __name__ == "__main__":
    main()
