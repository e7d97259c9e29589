/* An app embedding Kiln through the installed C API, that also uses Debian's libpthreadpool
 * itself: its own pool must keep working next to Kiln's XNNPACK runs (2 threads). */
#include <kiln/kiln.h>
#include <pthreadpool.h>
#include <stdio.h>

static void Square(void* ctx, size_t i) { ((long*)ctx)[i] = (long)(i * i); }

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  pthreadpool_t pool = pthreadpool_create(2);
  long sq[100];
  pthreadpool_parallelize_1d(pool, Square, sq, 100, 0);
  kiln_model* model = NULL;
  kiln_session* session = NULL;
  kiln_binding* io = NULL;
  kiln_session_options o;
  kiln_session_options_init(&o);
  o.threads = 2;
  static float x[8 * 32 * 32], y[16 * 32 * 32];
  for (int i = 0; i < 8 * 32 * 32; ++i) x[i] = (float)(i % 7) / 7.0f;
  const int64_t shape[4] = {1, 8, 32, 32};
  if (kiln_model_create_from_file(argv[1], &model) != KILN_OK ||
      kiln_session_create(model, &o, &session) != KILN_OK ||
      kiln_binding_create(session, &io) != KILN_OK ||
      kiln_binding_set_input(io, 0, KILN_F32, shape, 4, x, sizeof(x), 0) != KILN_OK ||
      kiln_binding_set_output(io, 0, KILN_F32, y, sizeof(y), 0) != KILN_OK) {
    fprintf(stderr, "error: %s\n", kiln_last_error_message());
    return 1;
  }
  for (int r = 0; r < 5; ++r) {
    if (kiln_session_run(session, io) != KILN_OK) {
      fprintf(stderr, "error: %s\n", kiln_last_error_message());
      return 1;
    }
    pthreadpool_parallelize_1d(pool, Square, sq, 100, 0);
  }
  double sum = 0;
  for (int i = 0; i < 16 * 32 * 32; ++i) sum += y[i];
  printf("kiln %s: y sum %.4f, own pool %ld\n", kiln_version_string(), sum, sq[99]);
  kiln_binding_release(io);
  kiln_session_release(session);
  kiln_model_release(model);
  pthreadpool_destroy(pool);
  return sq[99] == 9801 && sum > 0 ? 0 : 1;
}
