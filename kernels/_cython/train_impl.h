/* The fused MLP training step for one precision (included by train.c).
 *
 * Forward: y_l = act_l(y_{l-1} w_l + b_l), bias and activation in the GEMM epilogue.
 * Loss:    probs = softmax(y_L) and the mean cross-entropy; dL/dy_L = (probs - onehot)/n,
 *          written over the probabilities in place.
 * Backward, last layer first: dz_l = dy_l act'(y_l) and db_l in one pass; dw_l = y_{l-1}^T dz_l;
 *          dy_{l-1} = dz_l w_l^T; then layer l's parameters are updated at once, while
 *          its gradients are still in cache (w_l is no longer needed by then). */

static void FN(update)(const fnn_optimizer *opt, fnn_idx size, T *p, const T *g, T *s1, T *s2)
{
    if (opt->kind == FNN_OPT_ADAM)
        fnn_adam_update(FN_DT, size, p, g, s1, s2, opt->lr, opt->beta1, opt->beta2, opt->eps,
                        opt->weight_decay, opt->step, opt->decoupled);
    else
        fnn_sgd_update(FN_DT, size, p, g, s1, opt->lr, opt->momentum, opt->weight_decay,
                       opt->nesterov);
}

static int FN(mlp_train_step)(int nlayers, const fnn_layer *layers, fnn_idx n, const T *x,
                              const int64_t *labels, const fnn_optimizer *opt, double *loss,
                              fnn_idx *correct)
{
    const T *input = x;
    for (int l = 0; l < nlayers; ++l) {
        const fnn_layer *L = &layers[l];
        FN(fnn_epi) epi = {L->b, L->act, (T)L->alpha};
        FN(fnn_gemm_packed)(n, L->out, L->in, 1, input, L->in, 1, L->w, L->out, 1, 0, L->y, L->out,
                            &epi, fnn_gemm_threads(n, L->out, L->in));
        input = L->y;
    }

    const fnn_layer *top = &layers[nlayers - 1];
    *correct = fnn_count_correct(FN_DT, n, top->out, top->y, labels);
    if (fnn_sce_forward(FN_DT, n, top->out, top->y, labels, top->dy, loss) < 0 ||
        fnn_sce_backward(FN_DT, n, top->out, top->dy, labels, top->dy) < 0)
        return -1;

    for (int l = nlayers - 1; l >= 0; --l) {
        const fnn_layer *L = &layers[l];
        const T *below = l > 0 ? (const T *)layers[l - 1].y : x;
        T *dz = L->dy;
        FN(fnn_act_grad_colsum)(n, L->out, L->y, dz, dz, L->gb, L->act, (T)L->alpha);
        FN(fnn_gemm_packed)(L->in, L->out, n, 1, below, 1, L->in, dz, L->out, 1, 0, L->gw, L->out,
                            NULL, fnn_gemm_threads(L->in, L->out, n));
        if (l > 0)
            FN(fnn_gemm_packed)(n, L->in, L->out, 1, dz, L->out, 1, L->w, 1, L->out, 0,
                                layers[l - 1].dy, L->in, NULL, fnn_gemm_threads(n, L->in, L->out));
        FN(update)(opt, L->in * L->out, L->w, L->gw, L->w_s1, L->w_s2);
        FN(update)(opt, L->out, L->b, L->gb, L->b_s1, L->b_s2);
    }
    return 0;
}
