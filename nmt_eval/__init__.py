"""NMT evaluation of mined bitext: fairseq training and sacrebleu scoring, as subprocesses."""
