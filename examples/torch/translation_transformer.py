"""Sequence-to-sequence translation with ``nn.Transformer`` (PyTorch's tutorial "Language
Translation with nn.Transformer and torchtext"), run by chainrule.

The model is the tutorial's ``Seq2SeqTransformer``: token embeddings scaled by sqrt(emb_size),
sinusoidal ``PositionalEncoding``, ``nn.Transformer`` with a causal target mask made by
``generate_square_subsequent_mask``, padding masks for source and target (and memory), and a
linear generator; ``nn.CrossEntropyLoss(ignore_index=PAD_IDX)``, Adam with betas (0.9, 0.98)
and eps 1e-9, Xavier-initialised weights, batches padded by ``pad_sequence``, greedy decoding.
The corpus (Multi30k German-English in the tutorial) is a synthetic parallel text made here:
each target sentence is its source sentence reversed, every word spelled in upper case, with
``<bos>``/``<eos>`` around it. ``--steps`` is the number of training batches.

    .venv/bin/python examples/torch/translation_transformer.py --steps 200 --lr 1e-3
"""

import argparse
import math

import numpy as np

import chainrule.torch as torch
import chainrule.torch.nn as nn
from chainrule.torch import Tensor
from chainrule.torch.nn import Transformer
from chainrule.torch.nn.utils.rnn import pad_sequence
from chainrule.torch.utils.data import DataLoader

parser = argparse.ArgumentParser(description="nn.Transformer translation")
parser.add_argument("--steps", type=int, default=100, help="training batches")
parser.add_argument("--emb-size", type=int, default=64)
parser.add_argument("--nhead", type=int, default=4)
parser.add_argument("--ffn-hid-dim", type=int, default=128)
parser.add_argument("--layers", type=int, default=2, help="encoder and decoder layers each")
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--lr", type=float, default=1e-4)
parser.add_argument("--dropout", type=float, default=0.1)
parser.add_argument("--sentences", type=int, default=512, help="training sentence pairs")
parser.add_argument("--save-init", type=str, default="", help="write the initial state_dict")
parser.add_argument("--init-weights", type=str, default="", help="start from this state_dict")
args = parser.parse_args()

torch.manual_seed(0)
DEVICE = torch.device("cpu")

######################################################################
# Data: a synthetic parallel corpus, tokenized and numericalized as the tutorial does

SRC_LANGUAGE = "src"
TGT_LANGUAGE = "tgt"
WORDS = "red blue green cat dog bird runs sees eats big small old new tree house river".split()


def parallel_corpus(num, seed):
    """``num`` (source, target) sentence pairs: the target is the source reversed, in capitals."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(num):
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), rng.integers(3, 9))]
        pairs.append((" ".join(words), " ".join(w.upper() for w in reversed(words))))
    return pairs


train_iter = parallel_corpus(args.sentences, 1)
val_iter = parallel_corpus(64, 2)

# Define special symbols and indices
UNK_IDX, PAD_IDX, BOS_IDX, EOS_IDX = 0, 1, 2, 3
# Make sure the tokens are in order of their indices to properly insert them in vocab
special_symbols = ["<unk>", "<pad>", "<bos>", "<eos>"]

token_transform = {SRC_LANGUAGE: str.split, TGT_LANGUAGE: str.split}
vocab_transform = {}
for ln, index in [(SRC_LANGUAGE, 0), (TGT_LANGUAGE, 1)]:
    itos = list(special_symbols)
    for pair in train_iter:
        for token in token_transform[ln](pair[index]):
            if token not in itos:
                itos.append(token)
    stoi = {token: i for i, token in enumerate(itos)}
    vocab_transform[ln] = (stoi, itos)


def vocab(ln):
    stoi = vocab_transform[ln][0]
    return lambda tokens: [stoi.get(token, UNK_IDX) for token in tokens]


######################################################################
# Seq2Seq Network using Transformer


# helper Module that adds positional encoding to the token embedding to introduce a notion of
# word order.
class PositionalEncoding(nn.Module):
    def __init__(self, emb_size: int, dropout: float, maxlen: int = 5000):
        super().__init__()
        den = torch.exp(-torch.arange(0, emb_size, 2) * math.log(10000) / emb_size)
        pos = torch.arange(0, maxlen).reshape(maxlen, 1)
        pos_embedding = torch.zeros((maxlen, emb_size))
        pos_embedding[:, 0::2] = torch.sin(pos * den)
        pos_embedding[:, 1::2] = torch.cos(pos * den)
        pos_embedding = pos_embedding.unsqueeze(-2)

        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pos_embedding", pos_embedding)

    def forward(self, token_embedding: Tensor):
        return self.dropout(token_embedding + self.pos_embedding[: token_embedding.size(0), :])


# helper Module to convert tensor of input indices into corresponding tensor of token embeddings
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size: int, emb_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_size)
        self.emb_size = emb_size

    def forward(self, tokens: Tensor):
        return self.embedding(tokens.long()) * math.sqrt(self.emb_size)


# Seq2Seq Network
class Seq2SeqTransformer(nn.Module):
    def __init__(
        self,
        num_encoder_layers: int,
        num_decoder_layers: int,
        emb_size: int,
        nhead: int,
        src_vocab_size: int,
        tgt_vocab_size: int,
        dim_feedforward: int = 512,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.transformer = Transformer(
            d_model=emb_size,
            nhead=nhead,
            num_encoder_layers=num_encoder_layers,
            num_decoder_layers=num_decoder_layers,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
        )
        self.generator = nn.Linear(emb_size, tgt_vocab_size)
        self.src_tok_emb = TokenEmbedding(src_vocab_size, emb_size)
        self.tgt_tok_emb = TokenEmbedding(tgt_vocab_size, emb_size)
        self.positional_encoding = PositionalEncoding(emb_size, dropout=dropout)

    def forward(
        self,
        src: Tensor,
        trg: Tensor,
        src_mask: Tensor,
        tgt_mask: Tensor,
        src_padding_mask: Tensor,
        tgt_padding_mask: Tensor,
        memory_key_padding_mask: Tensor,
    ):
        src_emb = self.positional_encoding(self.src_tok_emb(src))
        tgt_emb = self.positional_encoding(self.tgt_tok_emb(trg))
        outs = self.transformer(
            src_emb,
            tgt_emb,
            src_mask,
            tgt_mask,
            None,
            src_padding_mask,
            tgt_padding_mask,
            memory_key_padding_mask,
        )
        return self.generator(outs)

    def encode(self, src: Tensor, src_mask: Tensor):
        return self.transformer.encoder(self.positional_encoding(self.src_tok_emb(src)), src_mask)

    def decode(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor):
        return self.transformer.decoder(
            self.positional_encoding(self.tgt_tok_emb(tgt)), memory, tgt_mask
        )


def generate_square_subsequent_mask(sz):
    mask = (torch.triu(torch.ones((sz, sz), device=DEVICE)) == 1).transpose(0, 1)
    mask = mask.float().masked_fill(mask == 0, float("-inf")).masked_fill(mask == 1, 0.0)
    return mask


def create_mask(src, tgt):
    src_seq_len = src.shape[0]
    tgt_seq_len = tgt.shape[0]

    tgt_mask = generate_square_subsequent_mask(tgt_seq_len)
    src_mask = torch.zeros((src_seq_len, src_seq_len), device=DEVICE).type(torch.bool)

    src_padding_mask = (src == PAD_IDX).transpose(0, 1)
    tgt_padding_mask = (tgt == PAD_IDX).transpose(0, 1)
    return src_mask, tgt_mask, src_padding_mask, tgt_padding_mask


SRC_VOCAB_SIZE = len(vocab_transform[SRC_LANGUAGE][1])
TGT_VOCAB_SIZE = len(vocab_transform[TGT_LANGUAGE][1])

transformer = Seq2SeqTransformer(
    args.layers,
    args.layers,
    args.emb_size,
    args.nhead,
    SRC_VOCAB_SIZE,
    TGT_VOCAB_SIZE,
    args.ffn_hid_dim,
    args.dropout,
)

for p in transformer.parameters():
    if p.dim() > 1:
        nn.init.xavier_uniform_(p)

transformer = transformer.to(DEVICE)
if args.save_init:
    torch.save(transformer.state_dict(), args.save_init)
if args.init_weights:
    transformer.load_state_dict(torch.load(args.init_weights))

loss_fn = torch.nn.CrossEntropyLoss(ignore_index=PAD_IDX)

optimizer = torch.optim.Adam(transformer.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9)

######################################################################
# Collation


# helper function to club together sequential operations
def sequential_transforms(*transforms):
    def func(txt_input):
        for transform in transforms:
            txt_input = transform(txt_input)
        return txt_input

    return func


# function to add BOS/EOS and create tensor for input sequence indices
def tensor_transform(token_ids):
    return torch.cat((torch.tensor([BOS_IDX]), torch.tensor(token_ids), torch.tensor([EOS_IDX])))


# ``src`` and ``tgt`` language text transforms to convert raw strings into tensors indices
text_transform = {}
for ln in [SRC_LANGUAGE, TGT_LANGUAGE]:
    text_transform[ln] = sequential_transforms(
        token_transform[ln],  # Tokenization
        vocab(ln),  # Numericalization
        tensor_transform,  # Add BOS/EOS and create tensor
    )


# function to collate data samples into batch tensors
def collate_fn(batch):
    src_batch, tgt_batch = [], []
    for src_sample, tgt_sample in batch:
        src_batch.append(text_transform[SRC_LANGUAGE](src_sample.rstrip("\n")))
        tgt_batch.append(text_transform[TGT_LANGUAGE](tgt_sample.rstrip("\n")))

    src_batch = pad_sequence(src_batch, padding_value=PAD_IDX)
    tgt_batch = pad_sequence(tgt_batch, padding_value=PAD_IDX)
    return src_batch, tgt_batch


######################################################################
# Training and evaluation

losses_per_step = []


def train_epoch(model, optimizer, steps_left):
    model.train()
    losses = 0
    train_dataloader = DataLoader(train_iter, batch_size=args.batch_size, collate_fn=collate_fn)

    for src, tgt in train_dataloader:
        src = src.to(DEVICE)
        tgt = tgt.to(DEVICE)

        tgt_input = tgt[:-1, :]

        src_mask, tgt_mask, src_padding_mask, tgt_padding_mask = create_mask(src, tgt_input)

        logits = model(
            src,
            tgt_input,
            src_mask,
            tgt_mask,
            src_padding_mask,
            tgt_padding_mask,
            src_padding_mask,
        )

        optimizer.zero_grad()

        tgt_out = tgt[1:, :]
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))
        loss.backward()

        optimizer.step()
        losses += loss.item()
        losses_per_step.append(loss.item())
        if len(losses_per_step) >= steps_left:
            break

    return losses / len(list(train_dataloader))


def evaluate(model):
    model.eval()
    losses = 0

    val_dataloader = DataLoader(val_iter, batch_size=args.batch_size, collate_fn=collate_fn)

    for src, tgt in val_dataloader:
        src = src.to(DEVICE)
        tgt = tgt.to(DEVICE)

        tgt_input = tgt[:-1, :]

        src_mask, tgt_mask, src_padding_mask, tgt_padding_mask = create_mask(src, tgt_input)

        logits = model(
            src,
            tgt_input,
            src_mask,
            tgt_mask,
            src_padding_mask,
            tgt_padding_mask,
            src_padding_mask,
        )

        tgt_out = tgt[1:, :]
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))
        losses += loss.item()

    return losses / len(list(val_dataloader))


epoch = 0
while len(losses_per_step) < args.steps:
    epoch += 1
    train_loss = train_epoch(transformer, optimizer, args.steps)
    val_loss = evaluate(transformer)
    print(f"Epoch: {epoch}, Train loss: {train_loss:.3f}, Val loss: {val_loss:.3f}")


# function to generate output sequence using greedy algorithm
def greedy_decode(model, src, src_mask, max_len, start_symbol):
    src = src.to(DEVICE)
    src_mask = src_mask.to(DEVICE)

    memory = model.encode(src, src_mask)
    ys = torch.ones(1, 1).fill_(start_symbol).type(torch.long).to(DEVICE)
    for _ in range(max_len - 1):
        memory = memory.to(DEVICE)
        tgt_mask = (generate_square_subsequent_mask(ys.size(0)).type(torch.bool)).to(DEVICE)
        out = model.decode(ys, memory, tgt_mask)
        out = out.transpose(0, 1)
        prob = model.generator(out[:, -1])
        _, next_word = torch.max(prob, dim=1)
        next_word = next_word.item()

        ys = torch.cat([ys, torch.ones(1, 1).type_as(src.data).fill_(next_word)], dim=0)
        if next_word == EOS_IDX:
            break
    return ys


# actual function to translate input sentence into target language
def translate(model: torch.nn.Module, src_sentence: str):
    model.eval()
    src = text_transform[SRC_LANGUAGE](src_sentence).view(-1, 1)
    num_tokens = src.shape[0]
    src_mask = (torch.zeros(num_tokens, num_tokens)).type(torch.bool)
    tgt_tokens = greedy_decode(
        model, src, src_mask, max_len=num_tokens + 5, start_symbol=BOS_IDX
    ).flatten()
    itos = vocab_transform[TGT_LANGUAGE][1]
    return (
        " ".join(itos[i] for i in list(tgt_tokens.cpu().numpy()))
        .replace("<bos>", "")
        .replace("<eos>", "")
    )


sentence = "big cat sees red house"  # expected: "HOUSE RED SEES CAT BIG"
translation = translate(transformer, sentence)
print(f"{sentence!r} -> {translation!r}")

mask = generate_square_subsequent_mask(5)
for k, value in enumerate(losses_per_step):
    print(f"loss_{k:03d} {value}")
print(f"first_loss {losses_per_step[0]}")
print(f"last_loss {losses_per_step[-1]}")
print(f"val_loss {val_loss}")
print(f"translation_words {len(translation.split())}")
print(f"mask_agree {int(torch.equal(mask, Transformer.generate_square_subsequent_mask(5)))}")
