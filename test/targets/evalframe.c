/*
 * A frame evaluation function of PEP 523 (CPython 3.9-3.11), as a JIT or a
 * debugger installs one: it counts the frames it is given and hands each to
 * CPython's own.  No Python headers: the two calls have this shape on every
 * version that has them.  test/targets/probed.py, "evalframe", loads it.
 */
long covinject_test_frames;

void *_PyEval_EvalFrameDefault(void *tstate, void *frame, int throwflag);

void *covinject_test_eval(void *tstate, void *frame, int throwflag);

void *covinject_test_eval(void *tstate, void *frame, int throwflag)
{
	covinject_test_frames++;
	return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
}
