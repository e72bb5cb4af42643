#!/usr/bin/env python3
"""A GGUF model with a real model's shapes and tokenizer and random weights, for GPU checks on a
machine that a real model file cannot travel to (the device tool carries at most 64 MiB).

    random-model.py spec MODEL.gguf SPEC.json.gz   here: metadata and tensor shapes of MODEL
    random-model.py build SPEC.json.gz OUT.gguf    there: the same metadata, random F16 weights

Matrices are F16 draws from N(0, 0.02²), vectors (norms) are ones, so that hidden states stay
finite through every layer; `exitwise quantize --type Q4_K_M` then gives the catalog model's
quantization. Timings on such a file measure the engine (the same shapes and operations), not
a classifier: its heads would read noise. Needs the `gguf` package (llama.cpp's gguf-py) and
numpy.
"""

import gzip
import json
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

# Keys that GGUFWriter writes itself, or that the reader invents.
# The file type is written anew (the weights are F16 now).
SKIPPED_KEYS = {
    "general.architecture",
    "general.file_type",
    "GGUF.version",
    "GGUF.tensor_count",
    "GGUF.kv_count",
}


def spec(model_path, spec_path):
    reader = GGUFReader(model_path)
    fields = []
    for name, field in reader.fields.items():
        if name in SKIPPED_KEYS:
            continue
        value = field.contents()
        fields.append(
            {
                "name": name,
                "types": [int(kind) for kind in field.types],
                "value": value.tolist() if isinstance(value, np.ndarray) else value,
            }
        )
    tensors = [
        {"name": tensor.name, "shape": [int(size) for size in tensor.shape]}
        for tensor in reader.tensors
    ]
    architecture = reader.fields["general.architecture"].contents()
    document = {"architecture": architecture, "fields": fields, "tensors": tensors}
    with gzip.open(spec_path, "wt") as file:
        json.dump(document, file)
    print(f"{spec_path}: {len(fields)} fields, {len(tensors)} tensors of {model_path}")


def build(spec_path, out_path):
    with gzip.open(spec_path, "rt") as file:
        document = json.load(file)
    writer = GGUFWriter(out_path, document["architecture"])
    for field in document["fields"]:
        types = [GGUFValueType(kind) for kind in field["types"]]
        sub_type = types[1] if types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(field["name"], field["value"], types[0], sub_type)
    generator = np.random.default_rng(20261202)
    parameters = 0
    for tensor in document["tensors"]:
        # GGUF lists dimensions innermost first; numpy wants them outermost first.
        shape = tuple(reversed(tensor["shape"]))
        parameters += int(np.prod(shape))
        if len(shape) == 1:
            data = np.ones(shape, dtype=np.float32)
        else:
            data = (generator.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)
        writer.add_tensor(tensor["name"], data)
    writer.add_key_value("general.file_type", 1, GGUFValueType.UINT32)  # mostly F16
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"{out_path}: {len(document['tensors'])} tensors, {parameters} random parameters")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("spec", "build"):
        sys.exit(__doc__)
    (spec if sys.argv[1] == "spec" else build)(sys.argv[2], sys.argv[3])
