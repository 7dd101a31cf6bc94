#include <torch/torch.h>
namespace audit { int torch_threads() { return torch::get_num_threads(); } }
