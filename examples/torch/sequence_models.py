"""An LSTM part-of-speech tagger (PyTorch's tutorial "Sequence Models and Long Short-Term Memory
Networks"), run by chainrule.

The tutorial's first part feeds an ``nn.LSTM`` one element at a time and then the whole
sequence at once (the two give the same outputs: ``stepwise_max_diff``); its second part is
the ``LSTMTagger``: ``nn.Embedding``, ``nn.LSTM``, a linear layer and ``F.log_softmax``, trained
on tagged sentences with ``nn.NLLLoss`` and SGD (lr 0.1), one sentence per step. The
sentences are the tutorial's two and a few more of the same kind, bundled here. ``--steps``
is the number of sentences trained on (the tutorial: 300 epochs of 2).

    .venv/bin/python examples/torch/sequence_models.py --steps 300
"""

import argparse

import chainrule.torch as torch
import chainrule.torch.nn as nn
import chainrule.torch.nn.functional as F
import chainrule.torch.optim as optim

parser = argparse.ArgumentParser(description="LSTM part-of-speech tagger")
parser.add_argument("--steps", type=int, default=300, help="sentences trained on")
parser.add_argument("--embedding-dim", type=int, default=6)
parser.add_argument("--hidden-dim", type=int, default=6)
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--save-init", type=str, default="", help="write the initial state_dict")
parser.add_argument("--init-weights", type=str, default="", help="start from this state_dict")
args = parser.parse_args()

torch.manual_seed(1)

######################################################################
# LSTMs in PyTorch: one element at a time, or the whole sequence at once

lstm = nn.LSTM(3, 3)  # Input dim is 3, output dim is 3
inputs = [torch.randn(1, 3) for _ in range(5)]  # make a sequence of length 5

# initialize the hidden state.
hidden = (torch.randn(1, 1, 3), torch.randn(1, 1, 3))
first_hidden = hidden
stepwise = []
for i in inputs:
    # Step through the sequence one element at a time.
    # after each step, hidden contains the hidden state.
    out, hidden = lstm(i.view(1, 1, -1), hidden)
    stepwise.append(out)

# alternatively, we can do the entire sequence all at once.
inputs = torch.cat(inputs).view(len(inputs), 1, -1)
out, hidden = lstm(inputs, first_hidden)
stepwise_max_diff = (torch.cat(stepwise) - out).abs().max().item()
print(out)
print(hidden)


######################################################################
# Example: An LSTM for Part-of-Speech Tagging


def prepare_sequence(seq, to_ix):
    idxs = [to_ix[w] for w in seq]
    return torch.tensor(idxs, dtype=torch.long)


training_data = [
    # Tags are: DET - determiner; NN - noun; V - verb
    # For example, the word "The" is a determiner
    ("The dog ate the apple".split(), ["DET", "NN", "V", "DET", "NN"]),
    ("Everybody read that book".split(), ["NN", "V", "DET", "NN"]),
    ("The cat read the book".split(), ["DET", "NN", "V", "DET", "NN"]),
    ("Everybody ate that apple".split(), ["NN", "V", "DET", "NN"]),
    ("that dog read the book".split(), ["DET", "NN", "V", "DET", "NN"]),
    ("The book ate that cat".split(), ["DET", "NN", "V", "DET", "NN"]),
]
word_to_ix = {}
# For each words-list (sentence) and tags-list in each tuple of training_data
for sent, _tags in training_data:
    for word in sent:
        if word not in word_to_ix:  # word has not been assigned an index yet
            word_to_ix[word] = len(word_to_ix)  # Assign each word with a unique index
print(word_to_ix)
tag_to_ix = {"DET": 0, "NN": 1, "V": 2}  # Assign each tag with a unique index

# These will usually be more like 32 or 64 dimensional.
EMBEDDING_DIM = args.embedding_dim
HIDDEN_DIM = args.hidden_dim


class LSTMTagger(nn.Module):
    def __init__(self, embedding_dim, hidden_dim, vocab_size, tagset_size):
        super().__init__()
        self.hidden_dim = hidden_dim

        self.word_embeddings = nn.Embedding(vocab_size, embedding_dim)

        # The LSTM takes word embeddings as inputs, and outputs hidden states
        # with dimensionality hidden_dim.
        self.lstm = nn.LSTM(embedding_dim, hidden_dim)

        # The linear layer that maps from hidden state space to tag space
        self.hidden2tag = nn.Linear(hidden_dim, tagset_size)

    def forward(self, sentence):
        embeds = self.word_embeddings(sentence)
        lstm_out, _ = self.lstm(embeds.view(len(sentence), 1, -1))
        tag_space = self.hidden2tag(lstm_out.view(len(sentence), -1))
        tag_scores = F.log_softmax(tag_space, dim=1)
        return tag_scores


model = LSTMTagger(EMBEDDING_DIM, HIDDEN_DIM, len(word_to_ix), len(tag_to_ix))
if args.save_init:
    torch.save(model.state_dict(), args.save_init)
if args.init_weights:
    model.load_state_dict(torch.load(args.init_weights))
loss_function = nn.NLLLoss()
optimizer = optim.SGD(model.parameters(), lr=args.lr)

# See what the scores are before training
with torch.no_grad():
    inputs = prepare_sequence(training_data[0][0], word_to_ix)
    tag_scores = model(inputs)
    print(tag_scores)

losses = []
step = 0
while step < args.steps:  # the tutorial: 300 epochs over its toy data
    for sentence, tags in training_data:
        # Step 1. Remember that Pytorch accumulates gradients.
        # We need to clear them out before each instance
        model.zero_grad()

        # Step 2. Get our inputs ready for the network, that is, turn them into
        # Tensors of word indices.
        sentence_in = prepare_sequence(sentence, word_to_ix)
        targets = prepare_sequence(tags, tag_to_ix)

        # Step 3. Run our forward pass.
        tag_scores = model(sentence_in)

        # Step 4. Compute the loss, gradients, and update the parameters by
        #  calling optimizer.step()
        loss = loss_function(tag_scores, targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
        if step >= args.steps:
            break

# See what the scores are after training
correct = total = 0
with torch.no_grad():
    for sentence, tags in training_data:
        tag_scores = model(prepare_sequence(sentence, word_to_ix))
        predicted = tag_scores.argmax(dim=1)
        correct += (predicted == prepare_sequence(tags, tag_to_ix)).sum().item()
        total += len(tags)
    # The sentence is "the dog ate the apple". i,j corresponds to score for tag j for word i.
    # The predicted tag is the maximum scoring tag.
    tag_scores = model(prepare_sequence(training_data[0][0], word_to_ix))
    print(tag_scores)

for k, value in enumerate(losses):
    print(f"loss_{k:03d} {value}")
print(f"first_loss {losses[0]}")
print(f"last_loss {losses[-1]}")
print(f"stepwise_max_diff {stepwise_max_diff}")
print(f"tag_accuracy {correct / total}")
print(f"score_shape {'x'.join(map(str, tag_scores.shape))}")
