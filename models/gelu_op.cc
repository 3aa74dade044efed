// The exact GELU for CPU training: y = x * Phi(x) and its slope dy/dx = Phi(x) + x * phi(x), both
// written by one pass over x. Built and loaded by models/gelu_op.py; docs/gelu.md says why it exists.
//
// Phi(-|x|) = 0.5 * t * exp(-x^2 / 2) * P(t), t = 1 / (1 + tail_scale * |x|): the tail form fitted by
// scripts/fit_gelu_tail.py. Its coefficients come in as attributes, so Python holds the only copy.
// Why by hand: the XLA programs in models/activations.py compute the same formula but cannot write both
// outputs from one loop. This kernel gives the same bits as those programs: the same operations in the
// same order, multiply-adds fused where XLA fuses them (and nowhere else: built with -ffp-contract=off),
// and exp by XLA's CPU algorithm (Cephes' range reduction and polynomial). Denormals are flushed to zero
// by TensorFlow's threads, as for XLA's code. Eigen's packet math gives the vectors; the loop is spread
// over TensorFlow's intra-op threads.
#define EIGEN_USE_THREADS
#include <algorithm>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace {

using Packet = Eigen::internal::packet_traits<float>::type;
using IntPacket = Eigen::internal::unpacket_traits<Packet>::integer_packet;
constexpr int kWidth = Eigen::internal::unpacket_traits<Packet>::size;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

// exp(v) as XLA's CPU compiler emits it for float32: v clamped to [-87.8, 88.8], n = floor(v log2(e) + 1/2),
// r = v - n ln 2 in two fused steps (Cody-Waite), e^r by Cephes' degree-5 polynomial, then times 2^n.
Packet XlaExp(const Packet& v) {
  using namespace Eigen::internal;
  const Packet clamped = pmin(pmax(v, pset1<Packet>(-87.8f)), pset1<Packet>(88.8f));
  const Packet n = pfloor(pmadd(clamped, pset1<Packet>(1.44269504088896341f), pset1<Packet>(0.5f)));
  Packet r = pnmadd(n, pset1<Packet>(0.693359375f), clamped);
  r = pnmadd(n, pset1<Packet>(-2.12194440e-4f), r);
  Packet z = pmadd(r, pset1<Packet>(1.9875691500e-4f), pset1<Packet>(1.3981999507e-3f));
  z = pmadd(z, r, pset1<Packet>(8.3334519073e-3f));
  z = pmadd(z, r, pset1<Packet>(4.1665795894e-2f));
  z = pmadd(z, r, pset1<Packet>(1.6666665459e-1f));
  z = pmadd(z, r, pset1<Packet>(5.0000001201e-1f));
  z = padd(pmadd(z, pmul(r, r), r), pset1<Packet>(1.0f));
  const IntPacket biased = padd(pcast<Packet, IntPacket>(n), pset1<IntPacket>(127));
  return pmul(z, preinterpret<Packet>(plogical_shift_left<23>(biased)));  // 2^n from its exponent bits
}

// Per element, for the thread pool's cost model (one exp, one division, ~20 multiply-adds per vector of
// elements): about 3-4 cycles on one core of our Xeon, so small tensors stay on one thread.
constexpr double kCyclesPerElement = 4.0;

class GeluWithSlopeOp : public tensorflow::OpKernel {
 public:
  explicit GeluWithSlopeOp(tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("tail_coefficients", &coefficients_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("tail_scale", &tail_scale_));
    OP_REQUIRES(ctx, !coefficients_.empty(),
                tensorflow::errors::InvalidArgument("tail_coefficients must not be empty"));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& x = ctx->input(0);
    tensorflow::Tensor* y = nullptr;
    tensorflow::Tensor* slope = nullptr;
    // y may take over x's buffer when nothing else holds x (the backward pass needs only the slope).
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, x.shape(), &y));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, x.shape(), &slope));
    const float* in = x.flat<float>().data();
    float* out_y = y->flat<float>().data();
    float* out_slope = slope->flat<float>().data();
    const Eigen::Index n = x.NumElements();
    const Eigen::Index packets = (n + kWidth - 1) / kWidth;
    const Eigen::TensorOpCost cost(4.0 * kWidth, 8.0 * kWidth, kCyclesPerElement * kWidth);
    ctx->eigen_cpu_device().parallelFor(packets, cost, [&](Eigen::Index first, Eigen::Index last) {
      for (Eigen::Index p = first; p < last; ++p) {
        const Eigen::Index i = p * kWidth;
        if (i + kWidth <= n) {
          Evaluate(in + i, out_y + i, out_slope + i);
        } else {  // the ragged end goes through a padded packet, so every element gets the same arithmetic
          alignas(64) float xs[kWidth] = {};
          alignas(64) float ys[kWidth];
          alignas(64) float ss[kWidth];
          std::copy(in + i, in + n, xs);
          Evaluate(xs, ys, ss);
          std::copy(ys, ys + (n - i), out_y + i);
          std::copy(ss, ss + (n - i), out_slope + i);
        }
      }
    });
  }

 private:
  // y and the slope of one packet, operation for operation as models/activations.py's XLA programs.
  void Evaluate(const float* in, float* out_y, float* out_slope) const {
    using namespace Eigen::internal;
    const Packet x = ploadu<Packet>(in);
    const Packet one = pset1<Packet>(1.0f);
    const Packet t = pdiv(one, pmadd(pset1<Packet>(tail_scale_), pabs(x), one));
    const Packet gauss = XlaExp(pmul(pmul(pset1<Packet>(-0.5f), x), x));
    Packet poly = pset1<Packet>(coefficients_.back());
    for (int k = static_cast<int>(coefficients_.size()) - 2; k >= 0; --k) {  // Horner
      poly = pmadd(poly, t, pset1<Packet>(coefficients_[k]));
    }
    const Packet tail = pmul(pmul(pmul(pset1<Packet>(0.5f), t), gauss), poly);  // Phi(-|x|)
    const Packet cdf = pselect(pcmp_lt(x, pzero(x)), tail, psub(one, tail));
    pstoreu(out_y, pmul(x, cdf));
    pstoreu(out_slope, pmadd(x, pmul(pset1<Packet>(kInvSqrt2Pi), gauss), cdf));
  }

  std::vector<float> coefficients_;
  float tail_scale_;
};

}  // namespace

REGISTER_OP("VaeGeluWithSlope")
    .Input("x: float")
    .Output("y: float")
    .Output("slope: float")
    .Attr("tail_coefficients: list(float)")
    .Attr("tail_scale: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(0));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("VaeGeluWithSlope").Device(tensorflow::DEVICE_CPU), GeluWithSlopeOp);
