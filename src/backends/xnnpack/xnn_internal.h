// Private to the XNNPACK backend: the op table entry, the partition builder that op builders
// append steps to, and the layout / conversion helpers they share.
//
// Inside a compiled partition every float value is stored as float32 (float16 nodes are raised to
// float32: this 2022 XNNPACK's f16 kernels are emulated on x86 and ~6x slower than f32), every
// 8-bit value as int8 (u8 values XOR 0x80, i.e. minus 128, with their zero points minus 128, so
// that one family of qs8/qc8 kernels serves both; see xnn_ops_int8.cc), and
// every rank-4 value is stored NHWC (physical dim i = logical dim kNhwc[i]); other ranks keep
// their logical (row-major) order. Values are buffers in one workspace planned by liveness
// (plan/memory_plan.h). Compile runs each op's build function, which appends steps: XNNPACK
// operators (created, i.e. weights packed, at compile; set up once with the workspace's fixed
// pointers) or own loops. Run converts the border inputs into the workspace, runs the steps
// and converts the border outputs back to NCHW and the graph's element types.
#pragma once

#include <xnnpack.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "plan/backend.h"

namespace kiln::xnn {

// Physical order of a rank-4 value: N, H, W, C.
inline constexpr int kNhwc[4] = {0, 2, 3, 1};

// Physical permutation of a value of `rank`: NHWC for rank 4, identity otherwise.
std::vector<int> PhysicalPerm(int rank);
// shape permuted: out[i] = shape[perm[i]].
Shape Permuted(const Shape& shape, const std::vector<int>& perm);
bool IsIdentity(const std::vector<int>& perm);
// `shape` with leading 1s up to `rank` (numpy broadcasting against a rank-`rank` output).
Shape PadToRank(const Shape& shape, int rank);
// A padded operand shape in its rank's physical order, as XNNPACK's nd operators take it (at
// least one dim).
std::vector<size_t> PhysicalDims(const Shape& padded);

struct XnnDeleter {
  void operator()(xnn_operator_t op) const;
};
using XnnOp = std::unique_ptr<xnn_operator, XnnDeleter>;

// An error naming the node and the XNNPACK call that failed.
Status XnnError(const Node& node, const char* call, xnn_status s);

// Runs fn(begin, end) over [0, n) on the pool (nullptr: inline), in about 4 chunks per thread
// of at least `grain` items.
void ParallelFor(pthreadpool_t pool, int64_t n, int64_t grain,
                 const std::function<void(int64_t, int64_t)>& fn);

// dst (physical shape Permuted(src_shape, perm)) = src transposed: dst dim i is src dim perm[i].
// Blocked over the two innermost dims when they move (NCHW <-> NHWC is the common case); three
// planes into the innermost dim (an RGB image into NHWC) in AVX-512 vectors when `isa` allows.
void PermuteCopy(const float* src, const Shape& src_shape, const std::vector<int>& perm, float* dst,
                 pthreadpool_t pool, CpuIsa isa = CpuIsa::kPortable);
// Same, reading float16 / writing float16 (border conversions).
void PermuteCopyF16ToF32(const uint16_t* src, const Shape& src_shape, const std::vector<int>& perm,
                         float* dst, pthreadpool_t pool);
void PermuteCopyF32ToF16(const float* src, const Shape& src_shape, const std::vector<int>& perm,
                         uint16_t* dst, pthreadpool_t pool);
// Same for bytes, each XORed with `flip` (0x80: u8 <-> the int8 storage of u8 values).
void PermuteCopyBytes(const uint8_t* src, const Shape& src_shape, const std::vector<int>& perm,
                      uint8_t* dst, pthreadpool_t pool, uint8_t flip);

inline bool Is8Bit(ElementType t) { return t == ElementType::kU8 || t == ElementType::kI8; }
// Whether a node is answered by the int8 entry of its op: input 0 or output 0 is u8/i8.
bool IsInt8Node(const std::vector<const TypeInfo*>& inputs,
                const std::vector<const TypeInfo*>& outputs);

// A constant's values as float32 (f32, f16, bf16 or f64 data).
std::vector<float> ConstantFloats(const Tensor& t);
// The f32 values of a constant: its own data when it is stored as f32 (no copy), else
// converted into `scratch`.
const float* ConstantFloatData(const Tensor& t, std::vector<float>& scratch);

// The resolved workspace: buffer id -> pointer.
class Workspace {
 public:
  float* f(int buffer) const { return ptrs_[static_cast<size_t>(buffer)]; }
  int8_t* s8(int buffer) const {
    return reinterpret_cast<int8_t*>(ptrs_[static_cast<size_t>(buffer)]);
  }
  std::vector<float*> ptrs_;
};

// Activation fused into the producing op (Relu, Clip) and other fused followers.
struct Fusion {
  ValueId out;  // the value the fused group writes
  float out_min = -INFINITY, out_max = INFINITY;
  // Conv / ConvTranspose followed by BatchNormalization, Mul, Add, Sub by constants (scalars or
  // per output channel): y * channel_scale[c] + channel_shift[c], folded into the weights and
  // bias (empty: none).
  std::vector<double> channel_scale, channel_shift;
  // HardSwish followed by Mul and/or Add by constant scalars: y * post_mul + post_add
  // (computed in the HardSwish loop).
  bool has_post = false;
  float post_mul = 1, post_add = 0;
  const Tensor* bias = nullptr;        // MatMul / Gemm + Add(constant along the last axis)
  // Conv (own fp32 kernel only) + Add of a computed value of the output's shape, ready before
  // the Conv's step: added in the kernel's epilogue before the clamp (invalid: none).
  ValueId residual;
  // Conv (fp32, on an own kernel) [+ folded affine] followed by SiLU (x * Sigmoid(x)): applied
  // in the kernel's epilogue to each block of output while it is in cache.
  bool silu = false;
  // Conv (fp32, on an own kernel) [+ folded affine] followed by LeakyRelu: its alpha, applied in
  // the epilogue like the SiLU (NaN: none).
  float leaky_alpha = NAN;
  // A 1x1 expansion conv [+ affine + SiLU / clamp] whose output only a depthwise conv with a
  // fixed-size row loop reads (mobilenet / efficientnet blocks): that conv (dw) and its own
  // affine and activation run in the same step, row by row through a ring of expansion rows
  // (xnn_ops_conv.cc), so the expanded activation is never stored whole.
  const Node* dw = nullptr;
  std::vector<double> dw_scale, dw_shift;  // folded after the depthwise conv (empty: none)
  bool dw_silu = false;
  float dw_min = -INFINITY, dw_max = INFINITY;
  const Node* hard_sigmoid = nullptr;  // the HardSwish pattern's HardSigmoid form
  std::vector<const Node*> absorbed;   // nodes folded into this one
};

class Builder;
using SupportsFn = NodeSupport (*)(const NodeQuery& q);
using BuildFn = Status (*)(Builder& b, const Node& n, const Fusion& f);

// One op the backend runs: the single source of both the support answer and dispatch.
struct OpDef {
  const char* op_type;
  SupportsFn supports;
  BuildFn build;
  // Whether a following Relu/Clip can fold into this op's output_min/output_max (for int8 entries
  // the bounds are raw 8-bit values of the graph's type).
  bool takes_activation = false;
  // The int8 entry of the op (8-bit input 0 or output 0; xnn_ops_int8.cc), else the float one.
  bool int8 = false;
};
const std::vector<OpDef>& OpTable();
// The allocator XNNPACK is initialised with (xnn_allocator.cc): large blocks (packed weights)
// on transparent huge pages, so that a cold plan build does not fault page by page.
const xnn_allocator* KilnXnnAllocator();
const OpDef* FindOp(const std::string& op_type, bool int8 = false);

// Builds the steps of one partition.
class Builder {
 public:
  explicit Builder(const PartitionSpec& spec) : spec_(spec) {}

  const Graph& graph() const { return *spec_.graph; }
  const PartitionSpec& spec() const { return spec_; }
  Shape shape(ValueId v) const { return (*spec_.types)[v.v].static_shape(); }
  int rank(ValueId v) const { return static_cast<int>((*spec_.types)[v.v].shape->size()); }
  const Tensor* constant(ValueId v) const { return v.valid() ? spec_.constant(v) : nullptr; }
  std::vector<int> perm(ValueId v) const { return PhysicalPerm(rank(v)); }

  // The buffer holding value v (created on first use; 1 byte per element for u8/i8 values, else
  // 4), marked live at the current step.
  int Buffer(ValueId v);
  // A temporary buffer of `floats` floats live at the current step only (call Use to extend).
  int Scratch(int64_t floats);
  int ScratchBytes(int64_t bytes) { return Scratch((bytes + 3) / 4); }
  ElementType type(ValueId v) const { return (*spec_.types)[v.v].type; }
  // Marks buffer b live at the current step.
  int Use(int b);
  // Buffer holding v in logical (row-major NCHW) order: v's own buffer when its layout is the
  // identity, else a scratch filled by a permute step added now.
  int LogicalIn(ValueId v);
  // Buffer to write v in logical order; call FinishLogicalOut after adding the producing step.
  int LogicalOut(ValueId v);
  void FinishLogicalOut(ValueId v, int logical_buffer);

  // Appends an XNNPACK operator step; `setup` is called once with the final workspace and the
  // pool (old XNNPACK sizes its tiles for the pool's thread count at setup).
  void AddXnn(const Node& n, XnnOp op,
              std::function<xnn_status(const Workspace&, pthreadpool_t)> setup,
              const char* setup_name);
  // Appends an own-loop step.
  void AddLoop(std::function<void(const Workspace&, pthreadpool_t)> fn);
  void AddWeightBytes(int64_t bytes) { weight_bytes_ += bytes; }
  // Node n has copied constant input v into its own packed form and will not read v again
  // (PartitionSpec::packed_constant: the model's copy may then be released).
  void Packed(const Node& n, ValueId v) const {
    if (spec_.packed_constant && v.valid() && constant(v) != nullptr) spec_.packed_constant(n, v);
  }
  // Staging memory for weights while the partition is built, reused from node to node: fresh
  // pages cost a fault each, and at a cold start that was most of a plan build.
  std::vector<float>& staging(int slot) { return staging_[slot]; }
  // The node whose steps are being added (labels own-loop steps in the profile).
  void set_node(const Node* n) { node_ = n; }

  // Internal to the partition compiler.
  struct Step {
    XnnOp op;
    std::function<xnn_status(const Workspace&, pthreadpool_t)> setup;
    const char* setup_name = "";
    const Node* node = nullptr;
    std::function<void(const Workspace&, pthreadpool_t)> loop;
    bool single_thread = false;  // too little work to be worth a parallel dispatch
  };
  struct BufferInfo {
    int64_t floats = 0;
    int first = -1, last = -1;
    std::string name;
  };
  std::vector<Step>& steps() { return steps_; }
  std::vector<BufferInfo>& buffers() { return buffers_; }
  int BufferOf(ValueId v) const;
  int64_t weight_bytes() const { return weight_bytes_; }

 private:
  const PartitionSpec& spec_;
  std::vector<Step> steps_;
  std::vector<BufferInfo> buffers_;
  std::vector<std::pair<uint32_t, int>> value_buffer_;
  int64_t weight_bytes_ = 0;
  std::vector<float> staging_[2];
  const Node* node_ = nullptr;
};

// Common Supports() checks: float inputs/outputs all f32 or all f16 with static shapes (the
// inputs listed in `float_inputs`; others are ignored), rank <= max_rank. Empty when fine.
std::string CheckFloatNode(const NodeQuery& q, const std::vector<int>& float_inputs,
                           int max_rank = 6);
// Yes with the compute type for the node's float type (f16 raised to f32) and a cost from
// EstimateWork at the given throughputs.
NodeSupport YesFloat(const NodeQuery& q, double gmacs_per_thread, double gbytes);
// Constant min/max of a Clip node (attributes before opset 11, inputs after); false if not
// constant.
bool ClipBounds(const Node& n, const std::function<const Tensor*(ValueId)>& constant, float* lo,
                float* hi);

}  // namespace kiln::xnn
