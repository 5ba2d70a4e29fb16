// conv.wgsl tiled through workgroup memory, for GPUs (where barriers are cheap and global
// loads are not). A workgroup computes 32 output pixels x 64 output channels; each of its
// 64 invocations keeps 4 pixels x 8 channels in registers, as in conv.wgsl. Each step stages
// 16 input channels of one tap for the workgroup's 32 pixels (normalized as they are loaded,
// zero in the padding) and the matching 16 x 64 weights, so every value is read from global
// memory once per workgroup instead of once per invocation.
//
// Needs input channels in multiples of 16 (the
// stem, with 3, uses conv.wgsl). Dispatch: (ceil(cout / 64), ceil(out_h * out_w / 32), images).

// Constants, parameters, bindings and helpers: conv_bindings.wgsl.

const TILE_PIXELS: u32 = 32u;
const TILE_COUT4: u32 = 16u;  // 64 output channels
const STEP_CIN4: u32 = 4u;    // 16 input channels per step

var<workgroup> staged_input: array<vec4<f32>, 128>;   // [TILE_PIXELS][STEP_CIN4]
var<workgroup> staged_weight: array<act4, 256>;       // [STEP_CIN4 * 4][TILE_COUT4]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let pixels = p.out_h * p.out_w;
    let image = wg.z;
    let src_base = image * p.in_h * p.in_w * p.cin4;
    let affine_base = image * 2u * p.cin4;
    let first_pixel = wg.y * TILE_PIXELS;
    let first_co4 = wg.x * TILE_COUT4;
    // This invocation's outputs within the tile.
    let my_pixel = (lid / 8u) * 4u;
    let my_co4 = (lid % 8u) * 2u;

    // The two input slots this invocation stages: slot = lid + 64 s is (pixel slot / 4, vec4 slot % 4).
    var oy: array<i32, 2>;
    var ox: array<i32, 2>;
    for (var s = 0u; s < 2u; s++) {
        let pixel = min(first_pixel + (lid + s * 64u) / STEP_CIN4, pixels - 1u);
        oy[s] = i32((pixel / p.out_w) * p.stride) - i32(p.pad);
        ox[s] = i32((pixel % p.out_w) * p.stride) - i32(p.pad);
    }

    var acc: array<vec4<f32>, 4>;   // channels my_co4 .. +3
    var acc2: array<vec4<f32>, 4>;  // channels my_co4+4 .. +7
    for (var ky = 0u; ky < KERNEL; ky++) {
        for (var kx = 0u; kx < KERNEL; kx++) {
            var base: array<i32, 2>;  // start of the slot's pixel, or -1 in the padding
            for (var s = 0u; s < 2u; s++) {
                let iy = oy[s] + i32(ky);
                let ix = ox[s] + i32(kx);
                let inside = KERNEL == 1u || (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w));
                base[s] = select(-1, (iy * i32(p.in_w) + ix) * i32(p.cin4), inside);
            }
            let tap = (ky * KERNEL + kx) * p.cin4 * 4u;
            for (var chunk = 0u; chunk < p.cin4; chunk += STEP_CIN4) {
                for (var s = 0u; s < 2u; s++) {
                    let slot = lid + s * 64u;
                    let c4 = chunk + slot % STEP_CIN4;
                    var v = vec4<f32>(0.0);
                    if (base[s] >= 0) {
                        v = normalized(src[src_base + u32(base[s]) + c4], c4, affine_base);
                    }
                    staged_input[slot] = v;
                }
                for (var s = 0u; s < 4u; s++) {
                    let slot = lid + s * 64u;
                    let co4 = first_co4 + slot % TILE_COUT4;
                    var w = act4(0.0);
                    if (co4 < p.cout4) {
                        w = weight[(tap + chunk * 4u + slot / TILE_COUT4) * p.cout4 + co4];
                    }
                    staged_weight[slot] = w;
                }
                workgroupBarrier();
                for (var k4 = 0u; k4 < STEP_CIN4; k4++) {
                    let row = k4 * 4u * TILE_COUT4 + my_co4;
                    let w0 = staged_weight[row];
                    let w1 = staged_weight[row + TILE_COUT4];
                    let w2 = staged_weight[row + 2u * TILE_COUT4];
                    let w3 = staged_weight[row + 3u * TILE_COUT4];
                    let u0 = staged_weight[row + 1u];
                    let u1 = staged_weight[row + 1u + TILE_COUT4];
                    let u2 = staged_weight[row + 1u + 2u * TILE_COUT4];
                    let u3 = staged_weight[row + 1u + 3u * TILE_COUT4];
                    for (var i = 0u; i < 4u; i++) {
                        let v = staged_input[(my_pixel + i) * STEP_CIN4 + k4];
                        acc[i] = madd(acc[i], v, w0, w1, w2, w3);
                        acc2[i] = madd(acc2[i], v, u0, u1, u2, u3);
                    }
                }
                workgroupBarrier();
            }
        }
    }

    let co4 = first_co4 + my_co4;
    let dst_base = image * pixels * p.cout4;
    for (var i = 0u; i < 4u; i++) {
        let pixel = first_pixel + my_pixel + i;
        if (pixel < pixels && co4 < p.cout4) {
            store_outputs(dst_base + pixel * p.cout4 + co4, acc[i], acc2[i]);
        }
    }
}
