"""The CLIP tokenizers SDXL uses, built offline from the real BPE vocabulary that ships in the
`openai-clip` wheel, so prompts tokenize to the same ids as with real SDXL."""

from __future__ import annotations

import gzip
import json
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

MAX_LENGTH = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def clip_tokenizer(folder: Path, pad_token: str) -> CLIPTokenizer:
    from transformers import CLIPTokenizer

    if not (folder / "vocab.json").is_file():
        write_clip_vocabulary(folder)
    return CLIPTokenizer.from_pretrained(
        folder, bos_token=BOS, eos_token=EOS, unk_token=EOS, pad_token=pad_token, model_max_length=MAX_LENGTH
    )


def write_clip_vocabulary(folder: Path) -> None:
    """Write CLIP's vocab.json and merges.txt, as OpenAI's `simple_tokenizer` builds them."""
    # located through the distribution: importing `clip` itself needs pkg_resources and torchvision
    bpe = Path(metadata.distribution("openai-clip").locate_file("clip/bpe_simple_vocab_16e6.txt.gz")).read_bytes()
    lines = gzip.decompress(bpe).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_symbols = list(_bytes_to_unicode().values())
    vocab = byte_symbols + [s + "</w>" for s in byte_symbols]
    vocab += ["".join(m) for m in merges]
    vocab += [BOS, EOS]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(
        json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8"
    )
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP's reversible byte -> printable character table
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))
