// The engine's worker, one-thread build with relaxed SIMD: started where the browser
// validates it (ouvert.js), the same results as worker.js's, faster byte dot products.
import * as wasm from "./wasm-relaxed/ouvert.js";
import { serve } from "./worker-core.js";

serve(wasm);
