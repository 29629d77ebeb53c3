"""Image batch jobs: the image job spec, the validation gate for image sets, the runner
(fit -> sample -> validate -> evaluate -> gate -> export) and the catalog's image
profile.

Nothing is imported here: ``pipelines.images.validation`` is imported by
``pipelines.validation`` and must load without it (and without torch).
"""
