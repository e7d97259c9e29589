// The same app in C++ over kiln.hpp (exceptions mode), built through find_package(Kiln).
#define KILN_CPP_EXCEPTIONS
#include <kiln/kiln.hpp>

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  try {
    kiln::SessionOptions opts;
    opts.Set("Threads", "2");
    kiln::Session session = kiln::Session::Create(kiln::Model::FromFile(argv[1]), opts);
    kiln::Binding io = session.NewBinding();
    std::vector<float> x(8 * 32 * 32, 0.5f);
    io.SetInput<float>(0, {1, 8, 32, 32}, x);
    session.Run(io);
    std::vector<float> y = io.Output(0).CopyAs<float>();
    double sum = 0;
    for (float v : y) sum += v;
    std::printf("kiln C++: %zu outputs, sum %.4f\n", y.size(), sum);
    return sum > 0 ? 0 : 1;
  } catch (const kiln::Exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
