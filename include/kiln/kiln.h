/* Kiln C API: load an ONNX model, set session options, describe inputs and outputs, bind
 * buffers, run, read the plan report; convert and quantize models. Stable C ABI over opaque
 * handles (libkiln.so; C++ callers may prefer the header-only kiln.hpp over this header).
 *
 * Conventions
 *   - Every function returns a kiln_status; KILN_OK (0) is success. On failure the message of
 *     the last failing call *on this thread* is kiln_last_error_message() (valid until this
 *     thread's next failing call); it names what is wrong (argument, tensor, node, file, key).
 *   - Results come back through out_ parameters, written only on success.
 *   - Objects are created by kiln_<object>_create* and freed by kiln_<object>_release (NULL is
 *     accepted and ignored). Strings Kiln returns as char* (JSON reports) are the caller's and
 *     are freed with kiln_free.
 *   - Options structs are filled with defaults by kiln_<options>_init before the caller sets
 *     fields; the struct_size field lets later versions add fields at the end.
 *   - No call throws, and no call aborts the process on bad arguments: a NULL handle, a wrong
 *     size, a wrong type or a call in the wrong order each return an error status.
 *
 * Objects, ownership and thread safety
 *   kiln_model    an imported model (immutable). Any number of sessions may be created over one
 *                 model, from any threads; each session keeps what it needs, so the model may be
 *                 released while sessions live.
 *   kiln_session  a model placed on backends and ready to run. Thread-safe: kiln_session_run
 *                 and every query may be called from several threads at once (runs are
 *                 serialised inside). Release it only when no call on it is in progress.
 *                 Any number of sessions may serve one package, in one process or several.
 *   kiln_binding  the inputs and outputs of one run (caller buffers or Kiln-allocated outputs).
 *                 NOT thread-safe: use one binding per thread. It refers to its session, which
 *                 must outlive it.
 *   kiln_tensor   a Kiln-allocated output: element type, shape and data, owned by the caller
 *                 (valid independently of the session and binding until released).
 *
 * Call order
 *   kiln_model_create_from_file -> kiln_session_create -> kiln_binding_create ->
 *   kiln_binding_set_input (each input) [-> kiln_binding_set_output] -> [kiln_session_prepare]
 *   -> kiln_session_run -> kiln_binding_get_output (or read the bound output buffers) ...
 *
 * Example (error checks shortened):
 *
 *   kiln_model* model = NULL;
 *   if (kiln_model_create_from_file("rec.onnx", &model) != KILN_OK) {
 *     fprintf(stderr, "%s\n", kiln_last_error_message());
 *     return 1;
 *   }
 *   kiln_session_options opts;
 *   kiln_session_options_init(&opts);
 *   opts.threads = 2;
 *   kiln_session* session = NULL;
 *   kiln_session_create(model, &opts, &session);
 *   kiln_model_release(model);
 *   kiln_binding* io = NULL;
 *   kiln_binding_create(session, &io);
 *   const int64_t shape[4] = {1, 3, 48, 320};
 *   kiln_binding_set_input(io, 0, KILN_F32, shape, 4, pixels, sizeof(pixels), 0);
 *   kiln_session_run(session, io);
 *   kiln_tensor* out = NULL;
 *   kiln_binding_get_output(io, 0, &out);
 *   const float* probs = (const float*)kiln_tensor_data(out);
 *   ...
 *   kiln_tensor_release(out);
 *   kiln_binding_release(io);
 *   kiln_session_release(session);
 */
#ifndef KILN_KILN_H_
#define KILN_KILN_H_

#include <stddef.h>
#include <stdint.h>

#if defined(KILN_BUILDING_LIBRARY)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0

/* ---- Status and errors ---------------------------------------------------------------- */

typedef enum kiln_status {
  KILN_OK = 0,
  KILN_ERROR_INVALID_ARGUMENT = 1, /* bad argument, model, tensor or option */
  KILN_ERROR_NOT_FOUND = 2,        /* a file, input, output or key that does not exist */
  KILN_ERROR_UNIMPLEMENTED = 3,    /* valid but not supported (yet) by this build */
  KILN_ERROR_OUT_OF_RANGE = 4,     /* an index or size outside its bounds */
  KILN_ERROR_INTERNAL = 5,         /* a broken invariant inside Kiln */
  KILN_ERROR_IO = 6,               /* a failing read or write */
  KILN_ERROR_WRONG_ORDER = 7,      /* a call before the call it needs (e.g. output before run) */
} kiln_status;

/* "ok", "invalid argument", ... (a static string; "unknown status" for other values). */
KILN_API const char* kiln_status_name(kiln_status status);
/* The message of this thread's last failing call ("" when none failed yet). Never NULL. */
KILN_API const char* kiln_last_error_message(void);
/* The library's version (out_ parameters may be NULL) and "0.1.0". */
KILN_API kiln_status kiln_version(int* out_major, int* out_minor, int* out_patch);
KILN_API const char* kiln_version_string(void);
/* Frees memory Kiln handed to the caller (JSON strings). NULL is ignored. */
KILN_API void kiln_free(void* p);

/* ---- Element types (values are ONNX TensorProto.DataType codes) ------------------------- */

typedef enum kiln_element_type {
  KILN_UNDEFINED = 0,
  KILN_F32 = 1,
  KILN_U8 = 2,
  KILN_I8 = 3,
  KILN_U16 = 4,
  KILN_I16 = 5,
  KILN_I32 = 6,
  KILN_I64 = 7,
  KILN_STRING = 8, /* not bindable through this API */
  KILN_BOOL = 9,   /* one byte per element */
  KILN_F16 = 10,
  KILN_F64 = 11,
  KILN_U32 = 12,
  KILN_U64 = 13,
  KILN_BF16 = 16,
} kiln_element_type;

/* "f32", "f16", ... ("undefined" for an unknown value). */
KILN_API const char* kiln_element_type_name(kiln_element_type type);
/* Bytes per element (0 for KILN_UNDEFINED, KILN_STRING and unknown values). */
KILN_API size_t kiln_element_type_size(kiln_element_type type);

/* ---- Model ------------------------------------------------------------------------------ */

typedef struct kiln_model kiln_model;

/* Imports an ONNX file (external data relative to its folder), or opens a .kiln package (a
 * folder with metadata/MANIFEST, made by kiln_pack or `kiln pack`): its MANIFEST, config.cfg and
 * listed files are checked now; each session created from it serves the best plan the package
 * holds for this device at that moment (a compiled int8 or float plan, else the float model)
 * and, with OnDeviceCompilation = 1, records its runs and compiles on the device. */
KILN_API kiln_status kiln_model_create_from_file(const char* path, kiln_model** out_model);
/* Imports a serialized ONNX model from memory (copied; the buffer may be freed afterwards). */
KILN_API kiln_status kiln_model_create_from_memory(const void* data, size_t size,
                                                   kiln_model** out_model);
KILN_API void kiln_model_release(kiln_model* model);

/* ---- Session options -------------------------------------------------------------------- */

typedef enum kiln_compute_units {
  KILN_UNITS_ALL = 0,
  KILN_UNITS_CPU_ONLY = 1,
  KILN_UNITS_CPU_AND_GPU = 2,
  KILN_UNITS_CPU_AND_NPU = 3,
} kiln_compute_units;

typedef enum kiln_model_type {
  KILN_MODEL_TYPE_AS_MODEL = 0, /* the model's own (kiln.model_type metadata; program when absent) */
  KILN_MODEL_TYPE_PROGRAM = 1,  /* every value's type is its minimum precision */
  KILN_MODEL_TYPE_NETWORK = 2,  /* only inputs and outputs are typed */
} kiln_model_type;

typedef enum kiln_precision {
  KILN_PRECISION_AS_MODEL = 0, /* run the model at the types it states */
  KILN_PRECISION_FP16 = 1,     /* convert a float32 model to fp16 when the session is created */
  KILN_PRECISION_MIXED = 2,    /* fp16 with precision-sensitive ops kept in fp32 */
} kiln_precision;

/* One "Key = Value" setting of DESIGN.md's config table, e.g. {"OpBackend.Conv", "ref"}. */
typedef struct kiln_config_entry {
  const char* key;
  const char* value;
} kiln_config_entry;

typedef struct kiln_session_options {
  size_t struct_size;        /* set by _init to sizeof(kiln_session_options) */
  int threads;               /* kernel threads, 1..256 (default 1) */
  kiln_compute_units units;  /* which compute units may run nodes (default all) */
  kiln_model_type model_type;
  kiln_precision precision;
  const char* backends;      /* preference order, comma-separated ("xnnpack,ref"); NULL: default */
  int fallback;              /* 1 (default): nodes no preferred backend takes run on "ref" */
  /* Per-op pins and any config key by name: Threads, ComputeUnits, ModelType, Backends,
   * Fallback, Precision, OpBackend.<OpType>, MaxTensorBytes, MaxArenaBytes, MaxConstantBytes
   * (resource limits in bytes, 0: none), MaxLoopIterations (iterations of one Loop node, 0:
   * none). Applied after the fields above.
   * For a package: every key of its config table (README "Config keys": also
   * OnDeviceCompilation and the Odc* keys) applies over its metadata/config.cfg, and so do the
   * fields above that differ from kiln_session_options_init's defaults (fields left at their
   * defaults keep the package's values). precision and Precision are refused for a package:
   * its precision is chosen when it is packed. Odc* keys on a bare ONNX model are refused. */
  const kiln_config_entry* config;
  size_t config_count;
} kiln_session_options;

KILN_API kiln_status kiln_session_options_init(kiln_session_options* options);

/* ---- Session ---------------------------------------------------------------------------- */

typedef struct kiln_session kiln_session;
typedef struct kiln_binding kiln_binding;
typedef struct kiln_tensor kiln_tensor;

/* Places the model on backends (options NULL: defaults). The model is not consumed. */
KILN_API kiln_status kiln_session_create(const kiln_model* model,
                                         const kiln_session_options* options,
                                         kiln_session** out_session);
KILN_API void kiln_session_release(kiln_session* session);

/* An input or output as the model declares it. Pointers stay valid as long as the session. */
typedef struct kiln_value_info {
  const char* name;
  kiln_element_type type;   /* KILN_UNDEFINED when the model does not say */
  int64_t rank;             /* -1: unknown rank (dims is NULL) */
  const int64_t* dims;      /* rank entries; -1 marks a dynamic dimension */
  const char* const* dim_names; /* rank entries: the symbol of a dynamic dim ("" when none) */
} kiln_value_info;

KILN_API kiln_status kiln_session_input_count(const kiln_session* session, size_t* out_count);
KILN_API kiln_status kiln_session_output_count(const kiln_session* session, size_t* out_count);
KILN_API kiln_status kiln_session_input_info(const kiln_session* session, size_t index,
                                             kiln_value_info* out_info);
KILN_API kiln_status kiln_session_output_info(const kiln_session* session, size_t index,
                                              kiln_value_info* out_info);
/* Index of the input / output with this name (KILN_ERROR_NOT_FOUND listing the names). */
KILN_API kiln_status kiln_session_find_input(const kiln_session* session, const char* name,
                                             size_t* out_index);
KILN_API kiln_status kiln_session_find_output(const kiln_session* session, const char* name,
                                              size_t* out_index);

/* Plans the model for the shapes bound in `binding` (NULL: for the model's own input shapes,
 * which must then be static), so that errors show here and the first run does not plan. */
KILN_API kiln_status kiln_session_prepare(kiln_session* session, const kiln_binding* binding);
/* Runs once on the binding's inputs; every input must be bound. Outputs bound to caller buffers
 * are written there; the others are kept for kiln_binding_get_output. Thread-safe. */
KILN_API kiln_status kiln_session_run(kiln_session* session, kiln_binding* binding);
/* The plan report as JSON for the binding's shapes (NULL: the model's static shapes): per node
 * its partition, backend, unit, stated and actual precision and why preferred backends declined
 * it; partitions, border conversions, the memory arena. Free *out_json with kiln_free. */
KILN_API kiln_status kiln_session_plan_json(kiln_session* session, const kiln_binding* binding,
                                            char** out_json);

/* ---- Binding: the buffers of a run -------------------------------------------------------- */

/* Flags of kiln_binding_set_input / _set_output. */
#define KILN_BIND_CONVERT 1u /* accept another float type than declared (f32 <-> f16/bf16/f64),
                              * converting at the boundary (a copy) */

KILN_API kiln_status kiln_binding_create(kiln_session* session, kiln_binding** out_binding);
KILN_API void kiln_binding_release(kiln_binding* binding);
/* Binds input `index` to the caller's buffer: `type` and `shape` (rank entries) describe it,
 * `bytes` must equal the element count times the type's size. Without a conversion the buffer
 * is used in place (no copy): it must stay valid and unchanged until the last run that uses it
 * returns. A type other than the declared one is an error unless flags has KILN_BIND_CONVERT
 * and both are float types. */
KILN_API kiln_status kiln_binding_set_input(kiln_binding* binding, size_t index,
                                            kiln_element_type type, const int64_t* shape,
                                            size_t rank, const void* data, size_t bytes,
                                            uint32_t flags);
/* Binds output `index` to a caller buffer of `bytes` bytes holding `type` elements: each run
 * writes the output there (converted when flags has KILN_BIND_CONVERT and the types differ);
 * a run whose output does not fit is an error naming both sizes. data NULL unbinds it (Kiln
 * allocates it again). */
KILN_API kiln_status kiln_binding_set_output(kiln_binding* binding, size_t index,
                                             kiln_element_type type, void* data, size_t bytes,
                                             uint32_t flags);
/* The last run's output `index` (KILN_ERROR_WRONG_ORDER before a run). The tensor shares the
 * output's storage and is the caller's to release; a later run does not change it. */
KILN_API kiln_status kiln_binding_get_output(const kiln_binding* binding, size_t index,
                                             kiln_tensor** out_tensor);

/* ---- Tensor (Kiln-allocated output) ------------------------------------------------------ */

KILN_API kiln_element_type kiln_tensor_type(const kiln_tensor* tensor);  /* UNDEFINED for NULL */
KILN_API size_t kiln_tensor_rank(const kiln_tensor* tensor);              /* 0 for NULL */
KILN_API const int64_t* kiln_tensor_shape(const kiln_tensor* tensor);     /* rank entries */
KILN_API const void* kiln_tensor_data(const kiln_tensor* tensor);
KILN_API size_t kiln_tensor_bytes(const kiln_tensor* tensor);
/* Copies the tensor into `data` as `type` (converting between float types when they differ;
 * other type changes are errors); `bytes` must be exactly the converted size. */
KILN_API kiln_status kiln_tensor_copy_to(const kiln_tensor* tensor, kiln_element_type type,
                                         void* data, size_t bytes);
KILN_API void kiln_tensor_release(kiln_tensor* tensor);

/* ---- Model conversion and quantization (write standard ONNX files) ------------------------ */

typedef struct kiln_convert_options {
  size_t struct_size;
  kiln_precision precision;  /* KILN_PRECISION_FP16 (default) or KILN_PRECISION_MIXED */
  kiln_model_type model_type; /* program (default) or network */
  const char* keep_fp32;     /* selector: "op:Softmax,name:REGEX"; NULL: the default for mixed */
  int keep_io_types;         /* 1: float inputs and outputs stay f32 (default 0) */
  int optimize;              /* 1 (default): run the default graph passes first */
  int threads;
} kiln_convert_options;

KILN_API kiln_status kiln_convert_options_init(kiln_convert_options* options);
/* Reads input_path, converts its precision and writes output_path (atomically). */
KILN_API kiln_status kiln_convert(const char* input_path, const char* output_path,
                                  const kiln_convert_options* options);

typedef struct kiln_quantize_options {
  size_t struct_size;
  const char* data_dir;    /* calibration samples: DATA_DIR/<sample>/<input name>.npy (required) */
  int samples;             /* at most this many samples (default 64) */
  const char* method;      /* "mse" (default), "minmax", "percentile:P", "entropy" */
  const char* activations; /* "u8" (default) or "s8" */
  int per_channel;         /* 1 (default) */
  int weight_bits;         /* 8 (default) or 7 */
  const char* keep_float;  /* as `kiln quantize --keep-float`: NULL or "" the accuracy search
                              (a quarter of the samples held out to measure on), "none" all
                              int8, "auto:TOL", or op:/name: items */
  int optimize;            /* 1 (default) */
  int threads;
} kiln_quantize_options;

KILN_API kiln_status kiln_quantize_options_init(kiln_quantize_options* options);
/* Calibrates on the samples, writes the int8 QDQ model to output_path (atomically). */
KILN_API kiln_status kiln_quantize(const char* input_path, const char* output_path,
                                   const kiln_quantize_options* options);

/* ---- Packages and on-device compilation (DESIGN.md "The package", "ODC") ------------------
 *
 * A package is a folder NAME.kiln holding the original model, its config (metadata/config.cfg)
 * and what the device compiled from it. Open it with kiln_model_create_from_file and create
 * sessions as for a model. With OnDeviceCompilation = 1 a session serving the float model
 * records its runs (inputs kept as calibration/validation samples under NAME.kiln/odc); when
 * OdcTrigger says so (after OdcRecords runs, at prepare, in the background, or only when asked)
 * the compile job quantizes (OdcMode = quantize) or compiles the model, validates the candidate
 * against the float model on held-out recorded samples and, only when it is within
 * OdcMaxAccuracyLoss and not slower, makes it the plan that serves; the session switches to it
 * between runs, and later processes load it directly. Every outcome is in the history.
 *
 * Thread safety: the calls below on one session are serialised with its runs (compile_now
 * blocks runs of that session until the job is done; other sessions keep serving). Sessions of
 * several threads or processes over one package share its recorded state under file locks.
 *
 *   kiln_pack_options p;  kiln_pack_options_init(&p);
 *   const kiln_config_entry odc[] = {{"OnDeviceCompilation", "1"}, {"OdcRecords", "16"}};
 *   p.config = odc;  p.config_count = 2;
 *   kiln_pack("det.onnx", "det.kiln", &p);
 *   kiln_model_create_from_file("det.kiln", &model);  ... kiln_session_run ... (16 runs later
 *   the job runs inside the 16th run; kiln_session_served_by says "compiled plan ... (int8 ...)")
 */

typedef struct kiln_pack_options {
  size_t struct_size;
  kiln_precision precision; /* AS_MODEL (default: the model as it is), FP16 or MIXED: the
                             * package's default model is then a converted program */
  const char* keep_fp32;    /* for MIXED: the selector of nodes kept f32; NULL: the default */
  const kiln_config_entry* config; /* metadata/config.cfg keys, e.g. {"OnDeviceCompilation","1"} */
  size_t config_count;
  int force;                /* 1: replace an existing package at package_path (default 0) */
} kiln_pack_options;

KILN_API kiln_status kiln_pack_options_init(kiln_pack_options* options);
/* Makes the package package_path (NAME.kiln) from an ONNX model (options NULL: defaults). The
 * config keys are checked against the key table before anything is written; the package is
 * assembled beside the target and renamed into place, so a failure leaves nothing behind. */
KILN_API kiln_status kiln_pack(const char* model_path, const char* package_path,
                               const kiln_pack_options* options);
/* Runs the package's compile job now, in this thread (the manual trigger; what earlier runs
 * recorded is its data), with `config` keys applied over config.cfg for this job (e.g. OdcMode,
 * Threads; config may be NULL when config_count is 0). KILN_OK when the job ran, whatever its
 * outcome; *out_result_json (may be NULL; free with kiln_free) is
 *   {"outcome": "accepted"|"accepted-float"|"rejected"|"no-samples"|"busy"|"aborted"|"failed",
 *    "reason": "...", "plan": "compiled/....kplan" or "", "entry": {history entry},
 *    "served_by": "..."}. */
KILN_API kiln_status kiln_compile_package(const char* package_path,
                                          const kiln_config_entry* config, size_t config_count,
                                          char** out_result_json);
/* Recording of runs on (1) or off (0) for the next runs of this session (default: on when the
 * package has OnDeviceCompilation = 1). Errors: a bare ONNX model, or turning it on in a package
 * whose OnDeviceCompilation is 0. */
KILN_API kiln_status kiln_session_odc_set_recording(kiln_session* session, int on);
/* The compile job now (as kiln_compile_package) for this session's package; on acceptance the
 * session serves the new plan from its next run. out_result_json as kiln_compile_package's. */
KILN_API kiln_status kiln_session_odc_compile_now(kiln_session* session, char** out_result_json);
/* {"enabled", "recording", "trigger", "mode", "records", "records_needed", "samples",
 *  "sample_bytes", "signatures", "last_job_outcome", "job_running", "served_by"}; for a bare
 * model {"enabled": false, "recording": false, "reason": ..., "served_by": ...}. */
KILN_API kiln_status kiln_session_odc_status_json(const kiln_session* session, char** out_json);
/* The package's ODC history (a JSON array of {outcome, reason, measurements, time, ...}, oldest
 * first; [] for a bare model). */
KILN_API kiln_status kiln_session_odc_history_json(const kiln_session* session, char** out_json);
/* What runs this session now, as text: "float model models/det.onnx",
 * "compiled plan compiled/<key>.kplan (int8, optimal)", "model rec.onnx" for a bare model. */
KILN_API kiln_status kiln_session_served_by(const kiln_session* session, char** out_text);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* KILN_KILN_H_ */
