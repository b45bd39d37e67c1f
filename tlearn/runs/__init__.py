"""The run directory: its format (layout, torch-free), the pipeline every job that writes a run goes through
(pipeline.run_job, which drives the one writer, writer.RunWriter) and the reader (run.Run, on sections.RunSections).

Every command that produces a run (fit, distill, extend, study cells) writes it through run_job, and everything
that reads one (predict, evaluate, export, serve, reports, a run used as a backbone or a teacher) goes through
layout / sections / Run, which refuse a run that is not complete.
"""
