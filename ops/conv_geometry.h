/*
 * conv_geometry.h — the sliding-window attributes that Conv, ConvTranspose and the pooling operators share
 * (kernel_shape, strides, dilations, pads, auto_pad, ceil_mode, output_padding, output_shape), read and
 * checked in one place, the output sizes and paddings they imply for a given input, and the channel checks
 * every convolution (float or integer) makes of its input and weights.
 *
 * Attributes are parsed and range-checked at load (conv_attrs_read); how many spatial dims they must have is
 * only known from the input's rank, so conv_geometry_forward / conv_geometry_transpose check that at plan
 * time and fill a conv_window (kernels/conv.h), the 3-D form every window kernel takes.
 */
#ifndef KILN_OPS_CONV_GEOMETRY_H
#define KILN_OPS_CONV_GEOMETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/conv.h"
#include "ops/op.h"

typedef enum conv_auto_pad {
    CONV_AUTO_PAD_NOTSET = 0, /* explicit `pads` */
    CONV_AUTO_PAD_SAME_UPPER, /* output = ceil(input / stride); an odd total padding puts the extra at the end */
    CONV_AUTO_PAD_SAME_LOWER, /* the same, with the extra at the start */
    CONV_AUTO_PAD_VALID,      /* no padding */
} conv_auto_pad;

/* Which attributes an operator has, for conv_attrs_read. */
#define CONV_ATTR_CEIL_MODE (1u << 0)      /* pools */
#define CONV_ATTR_OUTPUT_PADDING (1u << 1) /* ConvTranspose: output_padding and output_shape */

/* The attributes as written; a list's count is 0 when it is absent. */
typedef struct conv_attrs {
    conv_auto_pad auto_pad;
    bool ceil_mode;
    int n_kernel, n_strides, n_dilations, n_pads, n_output_padding, n_output_shape;
    int64_t kernel[CONV_SPATIAL], strides[CONV_SPATIAL], dilations[CONV_SPATIAL];
    int64_t pads[2 * CONV_SPATIAL]; /* all starts, then all ends */
    int64_t output_padding[CONV_SPATIAL];
    int64_t output_shape[CONV_SPATIAL + 2]; /* spatial dims, or N, C and the spatial dims */
} conv_attrs;

/* Reads and range-checks the window attributes; windows of more than 3 spatial dims are unsupported. */
kiln_status conv_attrs_read(const graph_node *node, unsigned features, conv_attrs *a);

/* Checks that the attribute lists fit `spatial` dims and that the kernel (from the weights or kernel_shape)
 * has sane sizes. */
kiln_status conv_attrs_check_rank(const conv_attrs *a, int spatial, const int64_t *kernel);

/* The window of a forward convolution or pool over spatial input dims `in` with kernel dims `kernel`. */
kiln_status conv_geometry_forward(const conv_attrs *a, int spatial, const int64_t *in, const int64_t *kernel,
                                  conv_window *w);
/* The window of a transposed convolution: w->in is the input's spatial dims, w->out the output's. */
kiln_status conv_geometry_transpose(const conv_attrs *a, int spatial, const int64_t *in, const int64_t *kernel,
                                    conv_window *w);

/* The window of a global pool: the whole spatial volume read as one 1-D window with one output. */
void conv_geometry_global(int64_t volume, conv_window *w);

/* The convolution of x (N, C, spatial...) by weights w: forward weights are (M, C/groups, k...), transposed
 * ones (C, M/groups, k...). Checks ranks and channel counts against `groups` and computes the window. */
kiln_status conv_describe(const conv_attrs *a, int64_t groups, bool transpose, const kiln_tensor *x,
                          const kiln_tensor *w, conv_shape *s, int *spatial);

/* Output dims [batch, channels, spatial output of w] into dims (rank spatial + 2). */
void conv_output_dims(const conv_window *w, int spatial, int64_t batch, int64_t channels, int64_t *dims);

#endif
