"""A word-level language model (pytorch/examples' ``word_language_model``), run by chainrule.

The models are those of the example's ``model.py``: an embedding, a multi-layer ``nn.LSTM``,
``nn.GRU`` or ``nn.RNN`` (``--model LSTM|GRU|RNN_TANH|RNN_RELU``) or a causal
``nn.Transformer`` encoder (``--model Transformer``), a linear decoder (optionally tied to the
embedding, ``--tied``) and ``F.log_softmax``. Training is the example's: truncated
backpropagation through ``--bptt`` steps with the hidden state detached between batches,
``nn.NLLLoss``, ``torch.nn.utils.clip_grad_norm_`` and a hand-written SGD update
``p.data.add_(p.grad, alpha=-lr)`` (or AdamW, ``--use-optimizer``), the learning rate divided
by 4 when the validation loss stops falling, the best model saved and reloaded for the test
set, and ``torch.onnx.export`` of the final model (``--onnx-export FILE``). The example saves
the whole module (``torch.save(model, f)``, loaded under ``torch.serialization.safe_globals``);
here its ``state_dict`` is saved, which chainrule's ``torch.save`` asks for (it refuses to
pickle a module).

The corpus (Wikitext-2 in the example) is a synthetic text generated here: sentences of a
small grammar, split into train / valid / test as the example's ``data.Corpus`` reads them.
``--steps`` limits the training batches of each epoch.

    .venv/bin/python examples/torch/word_language_model.py --steps 50 --model GRU --tied
"""

import argparse
import math
import os

import numpy as np

import chainrule.torch as torch
import chainrule.torch.nn as nn
import chainrule.torch.nn.functional as F
import chainrule.torch.onnx  # noqa: F401 (torch.onnx.export, as the example imports it)

###############################################################################
# Data: the example's data.py, over a generated text
###############################################################################

SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the bird", "a child", "the king"]
VERBS = ["sees", "likes", "finds", "watches", "follows", "hears", "paints"]
OBJECTS = ["the river", "a red ball", "the small house", "an apple", "the tall tree", "a song"]
ENDINGS = ["", "in the morning", "at night", "again", "with care", "near the sea"]


def synthetic_text(num_lines, seed):
    """``num_lines`` sentences of a small grammar (the stand-in for a Wikitext-2 file)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(num_lines):
        words = [SUBJECTS[rng.integers(len(SUBJECTS))], VERBS[rng.integers(len(VERBS))]]
        words.append(OBJECTS[rng.integers(len(OBJECTS))])
        ending = ENDINGS[rng.integers(len(ENDINGS))]
        if ending:
            words.append(ending)
        lines.append(" ".join(words) + " .")
    return lines


class Dictionary:
    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)


class Corpus:
    def __init__(self, seed):
        self.dictionary = Dictionary()
        self.train = self.tokenize(synthetic_text(2000, seed))
        self.valid = self.tokenize(synthetic_text(200, seed + 1))
        self.test = self.tokenize(synthetic_text(200, seed + 2))

    def tokenize(self, lines):
        """Tokenizes the lines of a text, as data.Corpus tokenizes a text file."""
        for line in lines:
            for word in line.split() + ["<eos>"]:
                self.dictionary.add_word(word)
        idss = []
        for line in lines:
            words = line.split() + ["<eos>"]
            ids = [self.dictionary.word2idx[word] for word in words]
            idss.append(torch.tensor(ids).type(torch.int64))
        return torch.cat(idss)


###############################################################################
# Models: the example's model.py
###############################################################################


class RNNModel(nn.Module):
    """Container module with an encoder, a recurrent module, and a decoder."""

    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if rnn_type in ["LSTM", "GRU"]:
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        else:
            try:
                nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
            except KeyError as e:
                raise ValueError(
                    "An invalid option for `--model` was supplied, "
                    "options are ['LSTM', 'GRU', 'RNN_TANH' or 'RNN_RELU']"
                ) from e
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)

        # Optionally tie weights as in "Using the Output Embedding to Improve Language Models"
        # (Press & Wolf 2016) and "Tying Word Vectors and Word Classifiers" (Inan et al. 2016).
        if tie_weights:
            if nhid != ninp:
                raise ValueError("When using the tied flag, nhid must be equal to emsize")
            self.decoder.weight = self.encoder.weight

        self.init_weights()

        self.rnn_type = rnn_type
        self.nhid = nhid
        self.nlayers = nlayers

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (
                weight.new_zeros(self.nlayers, bsz, self.nhid),
                weight.new_zeros(self.nlayers, bsz, self.nhid),
            )
        else:
            return weight.new_zeros(self.nlayers, bsz, self.nhid)


class PositionalEncoding(nn.Module):
    """Sine and cosine positional encodings added to the embeddings."""

    def __init__(self, d_model, dropout=0.1, max_len=5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)

        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        pe = pe.unsqueeze(0).transpose(0, 1)
        self.register_buffer("pe", pe)

    def forward(self, x):
        x = x + self.pe[: x.size(0), :]
        return self.dropout(x)


class TransformerModel(nn.Transformer):
    """Container module with an encoder, a transformer module, and a decoder."""

    def __init__(self, ntoken, ninp, nhead, nhid, nlayers, dropout=0.5):
        # (The example leaves nn.Transformer's own dropout at its default of 0.1; here it is
        # --dropout, so that --dropout 0 turns every dropout off.)
        super().__init__(
            d_model=ninp,
            nhead=nhead,
            dim_feedforward=nhid,
            num_encoder_layers=nlayers,
            num_decoder_layers=1,
            dropout=dropout,
        )
        self.model_type = "Transformer"
        self.src_mask = None
        self.pos_encoder = PositionalEncoding(ninp, dropout)

        self.input_emb = nn.Embedding(ntoken, ninp)
        self.ninp = ninp
        self.decoder = nn.Linear(ninp, ntoken)

        self.init_weights()

    def _generate_square_subsequent_mask(self, sz):
        return torch.log(torch.tril(torch.ones(sz, sz)))

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.input_emb.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, src, has_mask=True):
        if has_mask:
            device = src.device
            if self.src_mask is None or self.src_mask.size(0) != len(src):
                mask = self._generate_square_subsequent_mask(len(src)).to(device)
                self.src_mask = mask
        else:
            self.src_mask = None

        src = self.input_emb(src) * math.sqrt(self.ninp)
        src = self.pos_encoder(src)
        output = self.encoder(src, mask=self.src_mask)
        output = self.decoder(output)
        return F.log_softmax(output, dim=-1)


###############################################################################
# main.py
###############################################################################

parser = argparse.ArgumentParser(description="PyTorch RNN/LSTM/GRU/Transformer Language Model")
parser.add_argument(
    "--model", type=str, default="LSTM", help="RNN_TANH, RNN_RELU, LSTM, GRU, Transformer"
)
parser.add_argument("--emsize", type=int, default=200, help="size of word embeddings")
parser.add_argument("--nhid", type=int, default=200, help="number of hidden units per layer")
parser.add_argument("--nlayers", type=int, default=2, help="number of layers")
parser.add_argument("--lr", type=float, default=20, help="initial learning rate")
parser.add_argument("--clip", type=float, default=0.25, help="gradient clipping")
parser.add_argument("--epochs", type=int, default=1, help="upper epoch limit")
parser.add_argument("--steps", type=int, default=50, help="most training batches an epoch")
parser.add_argument("--batch_size", type=int, default=20, metavar="N", help="batch size")
parser.add_argument("--bptt", type=int, default=35, help="sequence length")
parser.add_argument("--dropout", type=float, default=0.2, help="dropout (0 = no dropout)")
parser.add_argument(
    "--tied", action="store_true", help="tie the word embedding and softmax weights"
)
parser.add_argument("--seed", type=int, default=1111, help="random seed")
parser.add_argument("--log-interval", type=int, default=10, metavar="N", help="report interval")
parser.add_argument("--save", type=str, default="model.pt", help="path to save the final model")
parser.add_argument("--onnx-export", type=str, default="", help="path to export the model as ONNX")
parser.add_argument("--nhead", type=int, default=2, help="heads of the transformer model")
parser.add_argument("--use-optimizer", action="store_true", help="use AdamW")
parser.add_argument("--save-init", type=str, default="", help="write the initial state_dict")
parser.add_argument("--init-weights", type=str, default="", help="start from this state_dict")
args = parser.parse_args()

# Set the random seed manually for reproducibility.
torch.manual_seed(args.seed)
device = torch.device("cpu")

corpus = Corpus(args.seed)


# Starting from sequential data, batchify arranges the dataset into columns; the columns are
# treated as independent by the model.
def batchify(data, bsz):
    # Work out how cleanly we can divide the dataset into bsz parts.
    nbatch = data.size(0) // bsz
    # Trim off any extra elements that wouldn't cleanly fit (remainders).
    data = data.narrow(0, 0, nbatch * bsz)
    # Evenly divide the data across the bsz batches.
    data = data.view(bsz, -1).t().contiguous()
    return data.to(device)


eval_batch_size = 10
train_data = batchify(corpus.train, args.batch_size)
val_data = batchify(corpus.valid, eval_batch_size)
test_data = batchify(corpus.test, eval_batch_size)

ntokens = len(corpus.dictionary)
if args.model == "Transformer":
    model = TransformerModel(
        ntokens, args.emsize, args.nhead, args.nhid, args.nlayers, args.dropout
    ).to(device)
else:
    model = RNNModel(
        args.model, ntokens, args.emsize, args.nhid, args.nlayers, args.dropout, args.tied
    ).to(device)
if args.save_init:
    torch.save(model.state_dict(), args.save_init)
if args.init_weights:
    model.load_state_dict(torch.load(args.init_weights))

criterion = nn.NLLLoss()
if args.use_optimizer:
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    else:
        return tuple(repackage_hidden(v) for v in h)


# get_batch subdivides the source data into chunks of length args.bptt.
def get_batch(source, i):
    seq_len = min(args.bptt, len(source) - 1 - i)
    data = source[i : i + seq_len]
    target = source[i + 1 : i + 1 + seq_len].view(-1)
    return data, target


def evaluate(data_source):
    # Turn on evaluation mode which disables dropout.
    model.eval()
    total_loss = 0.0
    ntokens = len(corpus.dictionary)
    if args.model != "Transformer":
        hidden = model.init_hidden(eval_batch_size)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, args.bptt):
            data, targets = get_batch(data_source, i)
            if args.model == "Transformer":
                output = model(data)
                output = output.view(-1, ntokens)
            else:
                output, hidden = model(data, hidden)
                hidden = repackage_hidden(hidden)
            total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)


losses = []


def train():
    # Turn on training mode which enables dropout.
    model.train()
    total_loss = 0.0
    ntokens = len(corpus.dictionary)
    if args.model != "Transformer":
        hidden = model.init_hidden(args.batch_size)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
        data, targets = get_batch(train_data, i)
        # Starting each batch, we detach the hidden state from how it was previously produced.
        if args.use_optimizer:
            optimizer.zero_grad()
        else:
            model.zero_grad()
        if args.model == "Transformer":
            output = model(data)
            output = output.view(-1, ntokens)
        else:
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()

        # `clip_grad_norm` helps prevent the exploding gradient problem in RNNs / LSTMs.
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        if args.use_optimizer:
            optimizer.step()
        else:
            for p in model.parameters():
                if p.grad is not None:  # (the transformer's unused decoder has none)
                    p.data.add_(p.grad, alpha=-lr)

        total_loss += loss.item()
        losses.append(loss.item())

        if batch % args.log_interval == 0 and batch > 0:
            cur_loss = total_loss / args.log_interval
            print(
                f"| epoch {epoch:3d} | {batch:5d}/{len(train_data) // args.bptt:5d} batches | lr {lr:02.2f} | loss {cur_loss:5.2f} | "
                f"ppl {math.exp(cur_loss):8.2f}"
            )
            total_loss = 0
        if batch + 1 >= args.steps:
            break


def export_onnx(path, batch_size, seq_len):
    print(f"The model is also exported in ONNX format at {os.path.realpath(path)}.")
    model.eval()
    dummy_input = torch.LongTensor(seq_len * batch_size).zero_().view(-1, batch_size).to(device)
    if args.model == "Transformer":
        torch.onnx.export(model, (dummy_input,), path)
        with torch.no_grad():
            return model(dummy_input), dummy_input, None
    hidden = model.init_hidden(batch_size)
    torch.onnx.export(model, (dummy_input, hidden), path)
    with torch.no_grad():
        return model(dummy_input, hidden)[0], dummy_input, hidden


# Loop over epochs.
lr = args.lr
best_val_loss = None
for epoch in range(1, args.epochs + 1):
    train()
    val_loss = evaluate(val_data)
    print("-" * 89)
    print(
        f"| end of epoch {epoch:3d} | valid loss {val_loss:5.2f} | valid ppl {math.exp(val_loss):8.2f}"
    )
    print("-" * 89)
    # Save the model if the validation loss is the best we've seen so far.
    if not best_val_loss or val_loss < best_val_loss:
        with open(args.save, "wb") as f:
            torch.save(model.state_dict(), f)
        best_val_loss = val_loss
    else:
        # Anneal the learning rate if no improvement has been seen in the validation dataset.
        lr /= 4.0

# Load the best saved model.
with open(args.save, "rb") as f:
    model.load_state_dict(torch.load(f))

# Run on test data.
test_loss = evaluate(test_data)
print("=" * 89)
print(f"| End of training | test loss {test_loss:5.2f} | test ppl {math.exp(test_loss):8.2f}")
print("=" * 89)

for k, value in enumerate(losses):
    print(f"loss_{k:03d} {value}")
print(f"first_loss {losses[0]}")
print(f"last_loss {losses[-1]}")
print(f"val_loss {best_val_loss}")
print(f"test_loss {test_loss}")
print(f"vocab_size {ntokens}")
print(f"tied {int(args.model != 'Transformer' and model.decoder.weight is model.encoder.weight)}")

if len(args.onnx_export) > 0:
    # Export the model in ONNX format, and run the file with onnxruntime when it is installed.
    expected, dummy_input, hidden = export_onnx(args.onnx_export, batch_size=1, seq_len=args.bptt)
    print(f"onnx_bytes {os.path.getsize(args.onnx_export)}")
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    if onnxruntime is not None:
        session = onnxruntime.InferenceSession(args.onnx_export)
        flat = [dummy_input] + (
            [] if hidden is None else list(hidden) if isinstance(hidden, tuple) else [hidden]
        )
        feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), flat)}
        got = session.run(None, feeds)[0]
        print(f"onnx_max_diff {float(np.abs(got - expected.numpy()).max())}")
