"""The run directory: its format (layout, torch-free), the one writer (writer.RunWriter) and the reader (run.Run).

Every command that produces a run (fit, distill, study cells) writes it through RunWriter, and everything that
reads one (predict, evaluate, export, serve, reports, a run used as a backbone or a teacher) goes through
layout / Run, which refuse a run that is not complete.
"""
